// A minimal VMM embedding virtio-argo: two guests and one backend domain, a blk disk and
// a console for each guest, all under a policy file; a pair the policy does not allow is
// refused before it is ever enumerated. Run: npx tsx examples/minimal-vmm.ts
import { fileURLToPath } from "node:url";
import { Hypervisor, Policy, Toolstack, PairDenied, GuestTransport, BlkDriver, ConsoleDriver } from "../host/index.ts";

export async function minimalVmm(log: (line: string) => void = console.log): Promise<number> {
  const policyFile = fileURLToPath(new URL("../policies/default.yaml", import.meta.url));
  const hv = new Hypervisor({ policy: Policy.load(policyFile) });
  hv.audit.onDenial((e) => log(`  audit: ${e.text}`));

  // Domains: each has its own memory; none can see another's.
  const backend = hv.createDomain({ name: "driver-domain", label: "backend_t", memoryBytes: 64 << 20 });
  const guests = [
    hv.createDomain({ name: "guest-a", label: "guest_t", memoryBytes: 32 << 20 }),
    hv.createDomain({ name: "guest-b", label: "guest2_t", memoryBytes: 32 << 20 }),
  ];

  // Device pairs: the toolstack checks the policy, starts each backend, assigns ports.
  const ts = new Toolstack(hv);
  for (const guest of guests) {
    for (const type of ["blk", "console"] as const) {
      try {
        const options = { blk: { image: new Uint8Array(8 << 20), id: `${guest.name}-disk` }, console: { onOutput: (b: Uint8Array) => log(`  ${guest.name} console: ${new TextDecoder().decode(b)}`) } };
        const pair = ts.addDevice({ type, frontend: guest, backend, options });
        log(`${guest.name}: ${type} attached (device ${pair.entry.devNum}, ports ${pair.entry.backendPort}/${pair.entry.frontendPort})`);
      } catch (e) {
        if (!(e instanceof PairDenied)) throw e;
        log(`${guest.name}: ${type} refused: ${e.message}`);
      }
    }
    ts.writeDeviceTable(guest); // what firmware would hand the guest at boot
  }

  // Inside each guest: discover devices from the table, drive them.
  for (const guest of guests) {
    const transport = new GuestTransport(ts.kernel(guest));
    const found = transport.probe();
    if (!Array.isArray(found)) throw new Error(`${guest.name}: bad device table: ${found.kind}`);
    for (const dev of transport.devices.values()) {
      if (dev.virtioId === 2) {
        const blk = new BlkDriver(dev);
        await blk.init();
        const buf = dev.alloc(4096);
        const status = await blk.write(0, buf, 4096);
        log(`${guest.name}: blk "${await blk.getId()}" ${blk.capacity} sectors, read-only=${blk.readOnly}, write -> status ${status}`);
      } else if (dev.virtioId === 3) {
        const con = new ConsoleDriver(dev);
        await con.init();
        await con.write(new TextEncoder().encode(`hello from ${guest.name}`));
      }
    }
  }
  const denials = hv.audit.entries().length;
  log(`done: ${guests.length} guests, ${denials} audited denial(s)`);
  return denials;
}

if (import.meta.url === `file://${process.argv[1]}`) await minimalVmm();
