// Device models (backend side) and guest drivers, behind the interface in types.ts.
export * from "./types.ts";
export { BlkModel, type BlkOptions } from "./blk/model.ts";
export { BlkDriver, type BlkDriverOptions } from "./blk/driver.ts";
export { ConsoleModel, type ConsoleOptions } from "./console/model.ts";
export { ConsoleDriver } from "./console/driver.ts";
export { RngModel } from "./rng/model.ts";
export { RngDriver } from "./rng/driver.ts";
import { BlkModel, type BlkOptions } from "./blk/model.ts";
import { ConsoleModel, type ConsoleOptions } from "./console/model.ts";
import { RngModel } from "./rng/model.ts";
import type { DeviceTypeName, VirtioDeviceModel } from "./types.ts";

export interface DeviceModelOptions {
  blk?: BlkOptions;
  console?: ConsoleOptions;
}

/** Makes the device model for `type`; net and vsock are not built yet. */
export function createDeviceModel(type: DeviceTypeName, opts: DeviceModelOptions = {}): VirtioDeviceModel {
  switch (type) {
    case "blk":
      if (!opts.blk) throw new TypeError("a blk device needs { blk: { image } }");
      return new BlkModel(opts.blk);
    case "console":
      return new ConsoleModel(opts.console);
    case "rng":
      return new RngModel();
    default:
      throw new Error(`no ${type} device model yet (blk, console and rng exist)`);
  }
}
