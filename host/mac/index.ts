// host/mac: the MAC policy engine (policy language, schema, decisions, AVC, audit,
// Flask import, explain). Re-exports only; the language is documented in policy.ts.
export { Policy, type AccessDecision, type PolicyKind } from "./policy.ts";
export type { Grant } from "./model.ts";
export { PolicyError, EACCES } from "./errors.ts";
export { Mac, type Subject, type MacOptions, type MacStats } from "./mac.ts";
export { AuditLog, AUDIT_CAPACITY, DOMID_XEN, auditText, type AuditEntry } from "./audit.ts";
export type { Explanation } from "./explain.ts";
export {
  ARGO_PERMS,
  DEVICE_TYPES,
  XEN_LABEL,
  pairName,
  type ArgoPerm,
  type DeviceType,
  type PairRule,
  type PairLimits,
  type DeviceRules,
  type RateLimit,
  type Origin,
} from "./model.ts";
export { schemaPath } from "./schema.ts";
