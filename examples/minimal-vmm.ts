// A minimal VMM embedding virtio-argo: two guests and one backend domain, a blk disk and
// a console for each guest, all under a policy file; a pair the policy does not allow is
// refused before it is ever enumerated. Run: npx tsx examples/minimal-vmm.ts
import { fileURLToPath } from "node:url";
import { Vmm, PairDenied, BlkDriver, ConsoleDriver, type AttachedDevice } from "../host/index.ts";

export async function minimalVmm(log: (line: string) => void = console.log): Promise<number> {
  const policyFile = fileURLToPath(new URL("../policies/default.yaml", import.meta.url));
  const vmm = new Vmm({ policy: policyFile });
  vmm.on((e) => {
    if (e.kind === "denial") log(`  audit: ${e.entry.text}`);
  });

  // Domains: each has its own memory; none can see another's.
  const backend = vmm.createDomain({ name: "driver-domain", label: "backend_t", memoryBytes: 64 << 20 });
  const guests = [
    vmm.createDomain({ name: "guest-a", label: "guest_t", memoryBytes: 32 << 20 }),
    vmm.createDomain({ name: "guest-b", label: "guest2_t", memoryBytes: 32 << 20 }),
  ];

  // Device pairs: the policy is checked, the backend started, the guest given the device.
  const attached: AttachedDevice[] = [];
  for (const guest of guests) {
    for (const type of ["blk", "console"] as const) {
      try {
        const dev = await vmm.attach({
          type, frontend: guest, backend, transport: "argo",
          disk: { image: new Uint8Array(8 << 20), id: `${guest.name}-disk` },
          console: { onOutput: (b) => log(`  ${guest.name} console: ${new TextDecoder().decode(b)}`) },
        });
        attached.push(dev);
        log(`${guest.name}: ${type} attached (device ${dev.id} over ${dev.transport})`);
      } catch (e) {
        if (!(e instanceof PairDenied)) throw e;
        log(`${guest.name}: ${type} refused: ${e.message}`);
      }
    }
  }

  // Inside each guest: bind the drivers and use the devices.
  for (const dev of attached) {
    const guest = dev.frontend.name;
    if (dev.type === "blk") {
      const blk = new BlkDriver(dev.device);
      await blk.init();
      const buf = dev.device.alloc(4096);
      const status = await blk.write(0, buf, 4096);
      log(`${guest}: blk "${await blk.getId()}" ${blk.capacity} sectors, read-only=${blk.readOnly}, write -> status ${status}`);
    } else if (dev.type === "console") {
      const con = new ConsoleDriver(dev.device);
      await con.init();
      await con.write(new TextEncoder().encode(`hello from ${guest}`));
    }
  }

  const denials = vmm.hv.audit.entries().length;
  const virqs = vmm.virqCounts().reduce((n, v) => n + v.raised, 0);
  log(`done: ${guests.length} guests, ${attached.length} devices, ${virqs} VIRQs, ${denials} audited denial(s)`);
  vmm.shutdown();
  return denials;
}

if (import.meta.url === `file://${process.argv[1]}`) await minimalVmm();
