// The Linux guest's assets for tests: the cache, else a fetch from Debian's archive
// (what .ci/run does first), else null with the reason, which the suite prints on one line.
import { AssetsUnavailable, linuxAssets, type LinuxAssets } from "../../host/linux/boot/assets.ts";

let memo: LinuxAssets | string | undefined;

export function testAssets(): LinuxAssets | string {
  if (memo !== undefined) return memo;
  try {
    memo = linuxAssets({ offline: true });
  } catch {
    try {
      memo = linuxAssets();
    } catch (e) {
      if (!(e instanceof AssetsUnavailable)) throw e;
      memo = e.message;
    }
  }
  return memo;
}
