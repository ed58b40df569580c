// Run configs (`virtio-argo run CONFIG`): domains and device pairs in a YAML file, checked
// in three passes like policy files (YAML syntax, the JSON schema below, cross-references)
// and refused with ConfigError at file:line:col. Paths inside (policy, disk images) are
// relative to the config file.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseDocument, LineCounter, type Document } from "yaml";
import { Ajv, type ErrorObject } from "ajv";
import { ConfigError } from "../errors.ts";
import { locate, offsetOf, splitPointer } from "../yaml-source.ts";
import { TRANSPORT_NAMES, type TransportName } from "./vmm.ts";
import type { DeviceTypeName } from "../devices/types.ts";

export interface RunDomain {
  name: string;
  label: string;
  memoryBytes: number;
}

export interface RunDevice {
  type: DeviceTypeName;
  frontend: string;
  backend: string;
  transport: TransportName;
  /** blk: an image file (absolute) or the size of an in-memory disk. */
  disk?: { path: string } | { sizeBytes: number };
  readOnly: boolean;
  id?: string;
  line: number;
}

export interface RunConfig {
  file: string;
  /** Absolute path of the policy file. */
  policy: string;
  domains: RunDomain[];
  devices: RunDevice[];
  /** Milliseconds between the guests' workload ticks and traffic reports. */
  intervalMs: number;
}

const SIZE = "^[0-9]+ ?(B|KiB|MiB|GiB)?$";

const SCHEMA = {
  type: "object",
  title: "run config",
  additionalProperties: false,
  required: ["policy", "domains", "devices"],
  properties: {
    policy: { type: "string", title: "policy", minLength: 1 },
    interval_ms: { type: "integer", title: "interval_ms", minimum: 10, maximum: 60000 },
    domains: {
      type: "array", minItems: 1,
      items: {
        type: "object", title: "domain", additionalProperties: false, required: ["name", "label"],
        properties: {
          name: { type: "string", pattern: "^[A-Za-z0-9_.-]{1,64}$" },
          label: { type: "string", pattern: "^[A-Za-z0-9_]{1,64}$" },
          memory: { type: ["string", "integer"], pattern: SIZE, minimum: 1 },
        },
      },
    },
    devices: {
      type: "array",
      items: {
        type: "object", title: "device", additionalProperties: false, required: ["type", "frontend", "backend"],
        properties: {
          type: { enum: ["blk", "console", "rng"] },
          frontend: { type: "string" },
          backend: { type: "string" },
          transport: { enum: [...TRANSPORT_NAMES] },
          disk: {
            type: "object", title: "disk", additionalProperties: false,
            properties: { path: { type: "string", minLength: 1 }, size: { type: ["string", "integer"], pattern: SIZE, minimum: 512 } },
            oneOf: [{ required: ["path"] }, { required: ["size"] }],
          },
          read_only: { type: "boolean" },
          id: { type: "string", maxLength: 20 },
        },
      },
    },
  },
} as const;

const validate = new Ajv({ allErrors: true, strict: true, strictTypes: false, strictRequired: false }).compile(SCHEMA);

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1 << 20, GiB: 1 << 30 };

function bytes(v: string | number): number {
  if (typeof v === "number") return v;
  const m = /^([0-9]+) ?(B|KiB|MiB|GiB)?$/.exec(v)!;
  return Number(m[1]) * UNITS[m[2] ?? "B"];
}

interface RawConfig {
  policy: string;
  interval_ms?: number;
  domains: Array<{ name: string; label: string; memory?: string | number }>;
  devices: Array<{ type: DeviceTypeName; frontend: string; backend: string; transport?: TransportName; disk?: { path?: string; size?: string | number }; read_only?: boolean; id?: string }>;
}

/** Reads and checks a run config. Throws ConfigError (file:line:col) on the first mistake. */
export function loadRunConfig(file: string): RunConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(file, 0, 0, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseRunConfig(text, file);
}

export function parseRunConfig(text: string, file: string): RunConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const errAt = (offset: number, what: string): ConfigError => {
    const { line, col } = lc.linePos(offset);
    return new ConfigError(file, line, col, what);
  };
  if (doc.errors.length) throw errAt(doc.errors[0].pos[0], `YAML syntax: ${doc.errors[0].message.split("\n")[0]}`);
  const data = doc.toJS({ maxAliasCount: 100 }) as unknown;
  if (!validate(data)) throw schemaError(validate.errors![0], doc, errAt);
  const raw = data as RawConfig;
  const at = (path: (string | number)[]) => offsetOf(locate(doc, path.map(String)).node);
  const lineOf = (path: (string | number)[]) => lc.linePos(at(path)).line;

  const base = dirname(resolve(file));
  const names = new Set<string>();
  const domains = raw.domains.map((d, i) => {
    if (names.has(d.name)) throw errAt(at(["domains", i, "name"]), `duplicate domain name "${d.name}"`);
    names.add(d.name);
    const memoryBytes = bytes(d.memory ?? "32MiB");
    if (memoryBytes % 65536 !== 0 || memoryBytes < 1 << 20 || memoryBytes > 1 << 30) {
      throw errAt(at(["domains", i, "memory"]), `memory must be a multiple of 64 KiB between 1 MiB and 1 GiB, got ${memoryBytes} bytes`);
    }
    return { name: d.name, label: d.label, memoryBytes };
  });
  const devices = raw.devices.map((d, i): RunDevice => {
    for (const end of ["frontend", "backend"] as const) {
      if (!names.has(d[end])) throw errAt(at(["devices", i, end]), `unknown domain "${d[end]}" (declared: ${[...names].join(", ")})`);
    }
    if (d.type === "blk" && !d.disk) throw errAt(at(["devices", i]), "a blk device needs disk: { path: FILE } or disk: { size: 8MiB }");
    let disk: RunDevice["disk"];
    if (d.disk?.path) disk = { path: resolve(base, d.disk.path) };
    else if (d.disk?.size !== undefined) {
      const sizeBytes = bytes(d.disk.size);
      if (sizeBytes % 512 !== 0) throw errAt(at(["devices", i, "disk", "size"]), `disk size must be a multiple of 512 bytes, got ${sizeBytes}`);
      disk = { sizeBytes };
    }
    return { type: d.type, frontend: d.frontend, backend: d.backend, transport: d.transport ?? "argo", disk, readOnly: !!d.read_only, id: d.id, line: lineOf(["devices", i]) };
  });
  return { file, policy: resolve(base, raw.policy), domains, devices, intervalMs: raw.interval_ms ?? 1000 };
}

function schemaError(e: ErrorObject, doc: Document, errAt: (offset: number, what: string) => ConfigError): ConfigError {
  const path = splitPointer(e.instancePath);
  const { node, key } = locate(doc, path);
  const where = path.length ? path.join(".") : "the config";
  switch (e.keyword) {
    case "additionalProperties": {
      const k = (e.params as { additionalProperty: string }).additionalProperty;
      return errAt(offsetOf(locate(doc, [...path, k]).key ?? node), `unknown key "${k}" in ${where}`);
    }
    case "required":
      return errAt(offsetOf(node ?? key), `${where} is missing "${(e.params as { missingProperty: string }).missingProperty}"`);
    case "enum":
      return errAt(offsetOf(node), `${where} must be one of: ${(e.params as { allowedValues: unknown[] }).allowedValues.join(", ")}`);
    case "oneOf":
      return errAt(offsetOf(node), `${where} needs exactly one of "path" or "size"`);
    default:
      return errAt(offsetOf(node), `${where} ${e.message ?? e.keyword}`);
  }
}
