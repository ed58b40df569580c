// Device models (backend side) and guest drivers, behind the interface in types.ts.
export * from "./types.ts";
export { BlkModel, type BlkOptions } from "./blk/model.ts";
export { BlkDriver, type BlkDriverOptions } from "./blk/driver.ts";
export { ConsoleModel, type ConsoleOptions } from "./console/model.ts";
export { ConsoleDriver } from "./console/driver.ts";
export { RngModel } from "./rng/model.ts";
export { RngDriver } from "./rng/driver.ts";
export { NetModel, type NetOptions, type NetPortStats } from "./net/model.ts";
export { NetDriver, type NetDriverOptions } from "./net/driver.ts";
export { NetSwitch, type SwitchPort } from "./net/switch.ts";
export { VsockModel, type VsockOptions, type VsockPortStats } from "./vsock/model.ts";
export { VsockDriver, VsockSocket, type VsockDriverOptions } from "./vsock/driver.ts";
export { VsockHub, type HubPort } from "./vsock/hub.ts";
export { VsockStream, VsockError, type VsockErrorCode } from "./vsock/stream.ts";
export { DeviceFabric, guestCid } from "./fabric.ts";
import { BlkModel, type BlkOptions } from "./blk/model.ts";
import { ConsoleModel, type ConsoleOptions } from "./console/model.ts";
import { RngModel } from "./rng/model.ts";
import { NetModel, type NetOptions } from "./net/model.ts";
import { VsockModel, type VsockOptions } from "./vsock/model.ts";
import type { DeviceTypeName, VirtioDeviceModel } from "./types.ts";

export interface DeviceModelOptions {
  blk?: BlkOptions;
  console?: ConsoleOptions;
  /** net: the switch to join and the address (the toolstack fills these in from the policy). */
  net?: NetOptions;
  /** vsock: the hub to join and the CID (the toolstack fills these in). */
  vsock?: VsockOptions;
}

/** Makes the device model for `type`; net and vsock need their switch or hub (the toolstack's DeviceFabric gives them). */
export function createDeviceModel(type: DeviceTypeName, opts: DeviceModelOptions = {}): VirtioDeviceModel {
  switch (type) {
    case "blk":
      if (!opts.blk) throw new TypeError("a blk device needs { blk: { image } }");
      return new BlkModel(opts.blk);
    case "console":
      return new ConsoleModel(opts.console);
    case "rng":
      return new RngModel();
    case "net":
      if (!opts.net) throw new TypeError("a net device needs { net: { switch, mac } }");
      return new NetModel(opts.net);
    case "vsock":
      if (!opts.vsock) throw new TypeError("a vsock device needs { vsock: { hub, cid } }");
      return new VsockModel(opts.vsock);
    default:
      throw new Error(`no ${String(type)} device model`);
  }
}
