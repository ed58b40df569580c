// The one small interface between device models / guest drivers and the transports.
// A device model never sees a transport: it pops chains from DeviceQueues over its own
// memory and writes results into them. A guest driver never sees a transport either:
// it negotiates through a GuestVirtioDevice and adds buffers to DriverQueues. The same
// models and drivers then run over argo, grant, foreign and bounce alike.

/** VirtIO device ids (VirtIO 1.2 section 5). */
export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_CONSOLE = 3;
export const VIRTIO_ID_RNG = 4;
export const VIRTIO_ID_VSOCK = 19;

export type DeviceTypeName = "blk" | "net" | "console" | "vsock" | "rng";

export const VIRTIO_IDS: Record<DeviceTypeName, number> = {
  net: VIRTIO_ID_NET, blk: VIRTIO_ID_BLOCK, console: VIRTIO_ID_CONSOLE, rng: VIRTIO_ID_RNG, vsock: VIRTIO_ID_VSOCK,
};

// Reserved feature bits (VirtIO 1.2 section 6).
export const VIRTIO_F_INDIRECT_DESC = 1n << 28n;
export const VIRTIO_F_EVENT_IDX = 1n << 29n;
export const VIRTIO_F_VERSION_1 = 1n << 32n;
export const VIRTIO_F_RING_PACKED = 1n << 34n;
export const VIRTIO_F_IN_ORDER = 1n << 35n;

// Device status bits (VirtIO 1.2 section 2.1).
export const STATUS_ACKNOWLEDGE = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
export const STATUS_NEEDS_RESET = 64;
export const STATUS_FAILED = 128;

/**
 * One request as a device sees it: the bytes it may read and the room it may write,
 * both already resolved to the device's own memory. Offsets are in the chain's
 * readable (resp. writable) byte stream, whatever the descriptor layout
 * (VIRTIO_F_ANY_LAYOUT: devices must not assume framing).
 */
export interface DeviceChain {
  readonly readableLength: number;
  readonly writableLength: number;
  /** Copies readable bytes [offset, offset + dst.length) into dst; returns the count copied (short at the end). */
  read(offset: number, dst: Uint8Array): number;
  /** Writes src at writable `offset`; returns the count written (clamped to the capacity). */
  write(offset: number, src: Uint8Array): number;
}

/** Device side of one virtqueue, over the device's memory. */
export interface DeviceQueue {
  readonly size: number;
  /** The next available chain, or null when none (or when the queue is broken). */
  pop(): DeviceChain | null;
  /** Returns `chain` to the driver, with `written` bytes of its writable part filled. */
  push(chain: DeviceChain, written: number): void;
  /** Sends the used-buffer notification if the driver wants one (EVENT_IDX rules). */
  notifyDriver(): void;
}

/** What a device model gets when the driver sets DRIVER_OK. */
export interface DeviceEnv {
  readonly queues: readonly DeviceQueue[];
  /** Features the driver accepted (a subset of the model's offer). */
  readonly features: bigint;
  /** Tell the driver its config space changed (EVENT_CONFIG). */
  configChanged(): void;
  /** Record a device-level policy denial (e.g. a write to a read-only disk) in the audit log. */
  deny(perm: string, detail: string): void;
}

/** A device model (the "unmodified" backend device): blk, console, rng, ... */
export interface VirtioDeviceModel {
  readonly type: DeviceTypeName;
  readonly virtioId: number;
  readonly numQueues: number;
  readonly maxQueueSize: number;
  /** Feature bits offered to the driver. */
  readonly features: bigint;
  readonly configSize: number;
  /** Config space bytes; out-of-range reads return null. */
  readConfig(offset: number, length: number): Uint8Array | null;
  /** Returns false if the write is outside the writable part of config space. */
  writeConfig(offset: number, data: Uint8Array): boolean;
  /** DRIVER_OK: queues are set up; start serving. */
  activate(env: DeviceEnv): void;
  /** The driver made buffers available on `queue`. */
  queueNotify(queue: number): void;
  /** Device reset: drop in-flight state; activate() will be called again. */
  reset(): void;
}

/** A buffer in the guest's own memory. */
export interface GuestBuffer {
  gpa: number;
  len: number;
  writable: boolean;
}

/** Driver side of one virtqueue in the guest (the guest driver's view). */
export interface DriverQueue {
  readonly size: number;
  /** Free descriptors now; add() fails when a chain needs more. */
  readonly freeDescriptors: number;
  /** Adds a chain (readable buffers first); `token` comes back on completion. False if full. */
  add(buffers: readonly GuestBuffer[], token: number): boolean;
  /** Notifies the device if it wants to be told (EVENT_IDX); call after adding. */
  kick(): void;
}

/** Called for each completed chain: its token and the bytes the device wrote; `error` when the transport failed it. */
export type UsedHandler = (token: number, written: number, error: boolean) => void;

/**
 * A virtio device as the guest driver sees it, whatever the transport. Control
 * operations are asynchronous (they travel as messages); all memory is the guest's.
 */
export interface GuestVirtioDevice {
  readonly virtioId: number;
  /** The guest's memory and allocator, for the driver's own buffers. */
  readonly memory: WebAssembly.Memory;
  alloc(bytes: number): number;
  free(gpa: number, bytes: number): void;
  /** Reset, ACKNOWLEDGE, DRIVER, feature negotiation and FEATURES_OK; returns the accepted features. */
  negotiate(wanted: bigint): Promise<bigint>;
  readConfig(offset: number, length: number): Promise<Uint8Array>;
  writeConfig(offset: number, data: Uint8Array): Promise<void>;
  /** Sets queue `index` up with `size` entries (power of two) and returns its driver side. */
  setupQueue(index: number, size: number, onUsed: UsedHandler): Promise<DriverQueue>;
  /** DRIVER_OK. */
  driverOk(): Promise<void>;
  /** Full device reset (status 0); in-flight requests complete with error. */
  reset(): Promise<void>;
  /** Called when the device signals a config change (also when it sets DEVICE_NEEDS_RESET). */
  onConfigChange(cb: () => void): void;
  /**
   * DEVICE_NEEDS_RESET (VirtIO 1.2 2.1.1): the device (or the transport, for a ring the
   * driver broke with a bad chain) is in an error state; requests on the broken queue
   * failed, and only reset() and setting the queues up again bring it back.
   */
  readonly needsReset: boolean;
  /** True once the device was removed or its backend died; requests then fail with IOERR. */
  readonly gone: boolean;
  /** Largest buffer one descriptor may carry (the DMA layer's limit, e.g. swiotlb); none if absent. */
  readonly maxMappingBytes?: number;
}
