// Package entry of virtio-argo (`import ... from "virtio-argo"`). Re-exports only.
export { Hypervisor, type HypervisorOptions, type RingRevokedEvent } from "./hypervisor/hypervisor.ts";
export { Domain, type DomainConfig } from "./hypervisor/domain.ts";
export type { DomainArgo, ArgoAddr, RingSpec, Iov, NotifyQuery, NotifyResult } from "./hypervisor/argo-api.ts";
export * as errno from "./hypervisor/errno.ts";
export { errnoName } from "./hypervisor/errno.ts";
export * as argoAbi from "./hypervisor/layout.ts";
export { GuestArgo, type GuestRing, type MessageMeta } from "./guest/argo-driver.ts";
export { GuestHeap } from "./guest/heap.ts";
export * from "./mac/index.ts";
export { Toolstack, PairDenied, type DevicePair, type DevicePairSpec } from "./transport/toolstack.ts";
export { GuestTransport } from "./transport/guest-transport.ts";
export { ArgoFrontend } from "./transport/frontend.ts";
export { ArgoBackend } from "./transport/backend.ts";
export { TransportError } from "./transport/control-client.ts";
export { ForeignDevice } from "./transport/share/foreign.ts";
export { GrantTables } from "./hypervisor/grant.ts";
export * from "./devices/index.ts";
