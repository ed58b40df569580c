// The demo (what `npm start` shows a newcomer) runs and every step behaves as it says.
import { describe, expect, it } from "vitest";
import { runDemo } from "../../host/cli/demo.ts";

describe("virtio-argo demo", () => {
  it("runs every step with the expected results on the default policy", async () => {
    const lines: string[] = [];
    const code = await runDemo({ out: (l) => lines.push(l) });
    const text = lines.join("\n");
    expect(code).toBe(0);
    expect(text).not.toContain("UNEXPECTED");
    expect(text).toContain("the payload wrapped around the end of the ring");
    expect(text).toMatch(/sendv 100 B more .* -> -EAGAIN/);
    expect(text).toMatch(/retries sendv 100 B -> 100/);
    expect(text).toMatch(/stranger .*-> -EACCES/);
    expect(text).toContain("avc: denied");
  });
});
