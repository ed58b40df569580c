// `virtio-argo policy check FILE` and `virtio-argo policy explain FILE --from A --to B
// --device T`, as plain functions returning an exit code and output lines (main.ts
// prints them). Exit codes:
//   check:   0 the file is valid; 2 it is not (the first error as file:line:col, then
//            the count of further errors).
//   explain: 0 the device pair is allowed; 1 it is denied (with the reason);
//            2 the file is invalid, or the device type is unknown (a usage error).
// A file whose name ends in `.te` is read as Flask TE rules, any other as YAML.
import { Policy, PolicyError, DEVICE_TYPES, type DeviceType } from "../mac/index.ts";

/** The result of a CLI command: its exit code and what to print. */
export interface CliResult {
  code: number;
  out: string[];
}

function loadOrError(file: string): Policy | CliResult {
  try {
    return Policy.load(file);
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    const out = [e.message];
    if (e.others.length) out.push(`(${e.others.length} more error${e.others.length === 1 ? "" : "s"} after this one)`);
    return { code: 2, out };
  }
}

/** Validates a policy file: 0 valid, 2 invalid (first error as file:line:col). */
export function policyCheck(file: string): CliResult {
  const p = loadOrError(file);
  if (!(p instanceof Policy)) return p;
  const what = p.kind === "flask" ? `Flask TE import, ${p.labels.length} types` : `${p.labels.length} labels, ${p.pairs.length} pairs`;
  return { code: 0, out: [`${file}: ok (${what}, deny by default)`, ...p.warnings.map((w) => `warning: ${w}`)] };
}

/** Explains a device pair: 0 allowed, 1 denied, 2 invalid file or unknown device type. */
export function policyExplain(file: string, from: string, to: string, device: string): CliResult {
  if (!(DEVICE_TYPES as readonly string[]).includes(device)) {
    return { code: 2, out: [`unknown device type "${device}" (expected one of: ${DEVICE_TYPES.join(", ")})`] };
  }
  const p = loadOrError(file);
  if (!(p instanceof Policy)) return p;
  const x = p.explain(from, to, device as DeviceType);
  return { code: x.allowed ? 0 : 1, out: [...x.lines] };
}
