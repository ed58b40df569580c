// The four transports of the copy-versus-share comparison, opened by name over the same
// unmodified device model, each in a fresh hypervisor with one guest and one backend
// domain. Benchmarks only see a GuestVirtioDevice and an exposure count.
import { Hypervisor } from "../host/hypervisor/hypervisor.ts";
import { Policy } from "../host/mac/index.ts";
import { Toolstack } from "../host/transport/bus/toolstack.ts";
import { GuestTransport } from "../host/transport/bus/guest-transport.ts";
import type { DeviceTypeName, GuestVirtioDevice, VirtioDeviceModel } from "../host/devices/types.ts";

export const TRANSPORTS = ["argo", "grant", "foreign", "bounce"] as const;
export type TransportName = (typeof TRANSPORTS)[number];

export interface OpenDevice {
  transport: TransportName;
  dev: GuestVirtioDevice;
  /** Pages of the guest the backend can read right now (the isolation side of the trade). */
  exposedPages(): number;
}

const policyFor = (type: DeviceTypeName) => `
domains: [guest_t, backend_t]
pairs:
  - frontend: guest_t
    backend: backend_t
    device: ${type}
    allow: [enable, send, register_single_source]
    limits: { max_ring_bytes: 1048576, max_message_bytes: 266240 }
`;

/** Opens `model` (a fresh one per call) as device `type` over `transport`. */
export async function openDevice(transport: TransportName, type: DeviceTypeName, model: VirtioDeviceModel): Promise<OpenDevice> {
  const hv = new Hypervisor({ policy: Policy.parse(policyFor(type), `<${type} bench policy>`) });
  const guest = hv.createDomain({ name: "guest", label: "guest_t", memoryBytes: 64 << 20 });
  const backend = hv.createDomain({ name: "backend", label: "backend_t", memoryBytes: 128 << 20 });
  const ts = new Toolstack(hv);
  switch (transport) {
    case "argo": {
      const pair = ts.addDevice({ type, frontend: guest, backend, model });
      ts.writeDeviceTable(guest);
      const gt = new GuestTransport(ts.kernel(guest));
      gt.probe();
      // No page of the guest is ever mapped into the backend: it sees only its own ring.
      return { transport, dev: gt.devices.get(pair.entry.devNum)!, exposedPages: () => 0 };
    }
    default: {
      const pair = ts.addSharedDevice({ type, frontend: guest, backend, model }, transport);
      return { transport, dev: pair.device, exposedPages: () => pair.device.exposedPages };
    }
  }
}
