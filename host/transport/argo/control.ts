// The device side of the virtio-msg control plane: the status state machine of VirtIO
// 1.2 section 3.1 (reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queues,
// DRIVER_OK), config space access and queue setup by size. Requests arrive as bytes
// from another domain: each is length-checked and answered with data or an error,
// never an exception.
import {
  STATUS_DRIVER_OK, STATUS_FEATURES_OK, STATUS_NEEDS_RESET, STATUS_FAILED, VIRTIO_F_VERSION_1,
  type VirtioDeviceModel,
} from "../../devices/types.ts";
import { Ctrl, words } from "./wire.ts";

/** Vendor id reported in GET_DEVICE_INFO ("VARG"). */
export const VENDOR_ID = 0x47524156;

/** Error codes carried in an ERROR reply (le32). */
export const CTRL_ERR_BAD_LENGTH = 1;
export const CTRL_ERR_BAD_STATE = 2;
export const CTRL_ERR_BAD_ARGUMENT = 3;
export const CTRL_ERR_UNKNOWN = 4;

export interface ControlReply {
  error: boolean;
  data: Uint8Array;
}

export interface ControlHooks {
  /** DRIVER_OK with the queue sizes and accepted features. */
  activate(sizes: readonly number[], features: bigint): void;
  /** Status written to 0. */
  reset(): void;
  /**
   * SET_TRANSPORT_FEATURES: the bits the driver's transport asked for; returns those this
   * transport accepts (and uses from now on). Absent: none (a transport with no such bits).
   */
  transportFeatures?(asked: number): number;
}

function err(code: number): ControlReply {
  return { error: true, data: words(code) };
}

export class ControlEndpoint {
  status = 0;
  driverFeatures = 0n;
  readonly queueSizes: number[];
  private readonly model: VirtioDeviceModel;
  private readonly hooks: ControlHooks;
  private configGeneration = 0;

  constructor(model: VirtioDeviceModel, hooks: ControlHooks) {
    this.model = model;
    this.hooks = hooks;
    this.queueSizes = new Array(model.numQueues).fill(0);
  }

  /** Feature bits offered: the model's own plus VERSION_1 (this transport is modern only). */
  get offered(): bigint {
    return this.model.features | VIRTIO_F_VERSION_1;
  }

  handle(msgId: number, p: Uint8Array): ControlReply {
    const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
    const u32 = (i: number) => dv.getUint32(i * 4, true);
    const need = (n: number) => p.byteLength >= n * 4;
    const live = (this.status & STATUS_DRIVER_OK) !== 0;
    switch (msgId) {
      case Ctrl.GET_DEVICE_INFO:
        return { error: false, data: words(this.model.virtioId, VENDOR_ID, 64, this.model.configSize, this.model.numQueues, this.model.maxQueueSize) };
      case Ctrl.GET_DEVICE_FEATURES: {
        if (!need(2)) return err(CTRL_ERR_BAD_LENGTH);
        const index = u32(0);
        const count = u32(1);
        if (count > 2 || index + count > 2) return err(CTRL_ERR_BAD_ARGUMENT);
        const out: number[] = [];
        for (let i = index; i < index + count; i++) out.push(Number((this.offered >> BigInt(32 * i)) & 0xffffffffn));
        return { error: false, data: words(...out) };
      }
      case Ctrl.SET_DRIVER_FEATURES: {
        if (!need(2)) return err(CTRL_ERR_BAD_LENGTH);
        const index = u32(0);
        const count = u32(1);
        if (count > 2 || index + count > 2 || !need(2 + count)) return err(CTRL_ERR_BAD_ARGUMENT);
        // Features are fixed once FEATURES_OK is set (VirtIO 1.2 3.1.1).
        if (this.status & STATUS_FEATURES_OK) return err(CTRL_ERR_BAD_STATE);
        for (let i = 0; i < count; i++) {
          const shift = BigInt(32 * (index + i));
          this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << shift)) | (BigInt(u32(2 + i)) << shift);
        }
        return { error: false, data: new Uint8Array(0) };
      }
      case Ctrl.GET_CONFIG: {
        if (!need(2)) return err(CTRL_ERR_BAD_LENGTH);
        const bytes = this.model.readConfig(u32(0), u32(1));
        if (!bytes) return err(CTRL_ERR_BAD_ARGUMENT);
        const out = new Uint8Array(4 + bytes.length);
        new DataView(out.buffer).setUint32(0, this.configGeneration, true);
        out.set(bytes, 4);
        return { error: false, data: out };
      }
      case Ctrl.SET_CONFIG: {
        if (!need(2)) return err(CTRL_ERR_BAD_LENGTH);
        const size = u32(1);
        if (p.byteLength !== 8 + size) return err(CTRL_ERR_BAD_LENGTH);
        if (!this.model.writeConfig(u32(0), p.subarray(8))) return err(CTRL_ERR_BAD_ARGUMENT);
        this.configGeneration++;
        return { error: false, data: new Uint8Array(0) };
      }
      case Ctrl.GET_DEVICE_STATUS:
        return { error: false, data: words(this.status) };
      case Ctrl.SET_DEVICE_STATUS: {
        if (!need(1)) return err(CTRL_ERR_BAD_LENGTH);
        return { error: false, data: words(this.setStatus(u32(0))) };
      }
      case Ctrl.GET_VQUEUE: {
        if (!need(1)) return err(CTRL_ERR_BAD_LENGTH);
        if (u32(0) >= this.model.numQueues) return err(CTRL_ERR_BAD_ARGUMENT);
        return { error: false, data: words(this.model.maxQueueSize, this.queueSizes[u32(0)]) };
      }
      case Ctrl.SET_VQUEUE: {
        if (!need(2)) return err(CTRL_ERR_BAD_LENGTH);
        const index = u32(0);
        const size = u32(1);
        if (index >= this.model.numQueues) return err(CTRL_ERR_BAD_ARGUMENT);
        if (size === 0 || size > this.model.maxQueueSize || (size & (size - 1)) !== 0) return err(CTRL_ERR_BAD_ARGUMENT);
        if (live) return err(CTRL_ERR_BAD_STATE);
        this.queueSizes[index] = size;
        return { error: false, data: new Uint8Array(0) };
      }
      case Ctrl.SET_TRANSPORT_FEATURES: {
        // Transport-level, not the device's: allowed in any device state, kept across resets.
        if (!need(1)) return err(CTRL_ERR_BAD_LENGTH);
        return { error: false, data: words((this.hooks.transportFeatures?.(u32(0)) ?? 0) >>> 0) };
      }
      case Ctrl.RESET_VQUEUE: {
        if (!need(1)) return err(CTRL_ERR_BAD_LENGTH);
        if (u32(0) >= this.model.numQueues) return err(CTRL_ERR_BAD_ARGUMENT);
        if (live) return err(CTRL_ERR_BAD_STATE); // per-queue reset of a live device is not offered
        this.queueSizes[u32(0)] = 0;
        return { error: false, data: new Uint8Array(0) };
      }
      default:
        return err(CTRL_ERR_UNKNOWN);
    }
  }

  /** Applies a status write; returns the status the device now reports. */
  private setStatus(value: number): number {
    if (value === 0) {
      this.status = 0;
      this.driverFeatures = 0n;
      this.queueSizes.fill(0);
      this.hooks.reset();
      return 0;
    }
    // Bits only get set by the driver (except by reset); clearing one is a driver bug.
    if ((this.status & ~value) !== 0 || (value & STATUS_FAILED)) {
      this.status |= STATUS_NEEDS_RESET;
      return this.status;
    }
    const adding = value & ~this.status;
    if (adding & STATUS_FEATURES_OK) {
      // Accept only offered features, and only a modern driver.
      const ok = (this.driverFeatures & ~this.offered) === 0n && (this.driverFeatures & VIRTIO_F_VERSION_1) !== 0n;
      if (!ok) value &= ~STATUS_FEATURES_OK;
    }
    if (adding & STATUS_DRIVER_OK) {
      const queuesReady = this.queueSizes.some((s) => s > 0);
      if (!(value & STATUS_FEATURES_OK) || !queuesReady) {
        this.status = value & ~STATUS_DRIVER_OK;
        return this.status;
      }
      this.status = value;
      this.hooks.activate(this.queueSizes.slice(), this.driverFeatures);
      return this.status;
    }
    this.status = value;
    return this.status;
  }
}
