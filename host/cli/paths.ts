// Files shipped with the package, found relative to this module both from source
// (host/cli/*.ts, two levels below the root) and from the bundle (dist/cli.js, one level).
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";

/** A policy file shipped in policies/. */
export function policyPath(name: string): string {
  for (const rel of [`../../policies/${name}`, `../policies/${name}`]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error(`policies/${name} not found next to the package`);
}

/** The example policy that the demo and the README use. */
export function defaultPolicyPath(): string {
  return policyPath("default.yaml");
}
