// The example VMM runs as documented: devices attach, the policy refuses guest-b's disk
// before enumeration, and the read-only rule is enforced and audited.
import { describe, expect, it } from "vitest";
import { minimalVmm } from "../../examples/minimal-vmm.ts";

describe("examples/minimal-vmm.ts", () => {
  it("boots two guests and a backend; the denied pair is refused", async () => {
    const lines: string[] = [];
    const denials = await minimalVmm((l) => lines.push(l));
    const text = lines.join("\n");
    expect(text).toContain("guest-a: blk attached");
    expect(text).toContain("guest-b: blk refused");
    expect(text).toMatch(/guest-a: blk "guest-a-disk" 16384 sectors, read-only=true, write -> status 1/);
    expect(text).toContain("guest-b console: hello from guest-b");
    expect(text).toMatch(/audit: avc: denied \{ device_attach \} for scontext=guest2_t tcontext=backend_t tclass=blk/); // the refused attach
    expect(denials).toBe(2); // the refused attach and the read-only write
  });
});
