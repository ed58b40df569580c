// What the Linux guest test files share: disk images whose bytes show a misplaced sector,
// reading the sections a guest script prints, and killing a backend domain mid-run.
import { createHash } from "node:crypto";
import { expect } from "vitest";
import type { Hypervisor } from "../../host/hypervisor/hypervisor.ts";
import type { Domain } from "../../host/hypervisor/domain.ts";
import type { LinuxGuest, LinuxRunResult } from "../../host/linux/guest.ts";

/** A disk image whose bytes depend on their offset (so a misplaced sector shows). */
export function patterned(bytes: number, seed: number): Uint8Array {
  const img = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) img[i] = (Math.imul(i + seed, 2654435761) >>> 24) & 0xff;
  return img;
}

export const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");

/** The text printed between `== name` and the next section header. */
export function section(out: string, name: string): string {
  const start = out.indexOf(`== ${name}\n`);
  if (start < 0) return "";
  const rest = out.slice(start + name.length + 4);
  const end = rest.indexOf("\n== ");
  return end < 0 ? rest : rest.slice(0, end + 1);
}

/**
 * Waits for the guest's `dd-start` line, lets the dd run for half a second, destroys the
 * backend domain, and waits (at most a minute) for the guest's script to finish.
 */
export async function destroyBackendMidDd(g: LinuxGuest, hv: Hypervisor, backend: Domain, bootMs: number): Promise<{ killedAt: number; result: LinuxRunResult }> {
  await g.waitForLine((l) => l === "dd-start", bootMs);
  await new Promise((res) => setTimeout(res, 500));
  const killedAt = performance.now();
  hv.destroyDomain(backend.domid);
  return { killedAt, result: await g.result(60_000) };
}

/**
 * What a guest script's `ro` section shows for a read_only pair: /sys/block/.../ro is 1,
 * the disk reads back with the image's md5, the write failed, and the image is unchanged.
 */
export function expectReadOnlyDisk(roSection: string, image: Uint8Array, imageMd5: string): void {
  expect(roSection.split("\n")[0]).toBe("1");
  expect(roSection).toContain(imageMd5);
  expect(roSection).not.toContain("rc=0");
  expect(md5(image)).toBe(imageMd5);
}
