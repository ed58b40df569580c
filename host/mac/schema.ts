// The published JSON schema (policies/schema.json), compiled once with ajv. The schema
// file is the single source of truth: users validate with it in their editors, and we
// validate with the same bytes. It is read at run time from the package's `policies/`
// folder, found relative to this module both from source (host/mac/, two levels below
// the package root) and from the bundle (dist/, one level below).
import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv, type ValidateFunction } from "ajv";

let compiled: ValidateFunction | undefined;

/** Path of policies/schema.json next to this package. */
export function schemaPath(): string {
  for (const rel of ["../../policies/schema.json", "../policies/schema.json"]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error("policies/schema.json not found next to the package");
}

/**
 * The schema validator. allErrors so that every mistake in a file is found in one pass
 * (we report them in file order); verbose so each error carries its parent schema,
 * whose `title`/`description` make the message.
 */
export function policyValidator(): ValidateFunction {
  if (!compiled) {
    const schema = JSON.parse(readFileSync(schemaPath(), "utf8")) as object;
    compiled = new Ajv({ allErrors: true, verbose: true, strict: true, strictTypes: false }).compile(schema);
  }
  return compiled;
}
