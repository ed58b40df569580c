// Level-triggered interrupt lines of a v86 guest's IOAPIC, shared by devices.
// v86 keeps one level per line and does not combine devices: the line is asserted while
// any device on it asserts, counted here. Two timing rules, measured: v86 delivers an
// interrupt at once, mid-instruction, so a line is never raised from inside an MMIO
// handler (the guest oopsed in virtqueue_kick) but from a microtask; and a line is
// lowered synchronously when the guest acknowledges (a deferred lower re-fires the
// level-triggered line).

/** What the lines need from the emulated CPU (v86 internals: pinned version). */
export interface IrqChip {
  device_raise_irq(line: number): void;
  device_lower_irq(line: number): void;
}

export class IrqLines {
  private readonly chip: IrqChip;
  /** Devices asserting each line. */
  private readonly asserting = new Map<number, Set<number>>();
  private readonly scheduled = new Set<number>();
  /** Raises delivered, per line (observability and tests). */
  readonly raised = new Map<number, number>();

  constructor(chip: IrqChip) {
    this.chip = chip;
  }

  /** Device `dev` asserts `line`; the line goes up from a microtask if it was down. */
  assert(line: number, dev: number): void {
    let set = this.asserting.get(line);
    if (!set) this.asserting.set(line, (set = new Set()));
    const wasUp = set.size > 0;
    set.add(dev);
    if (wasUp || this.scheduled.has(line)) return;
    this.scheduled.add(line);
    queueMicrotask(() => {
      this.scheduled.delete(line);
      // Acknowledged in between: nothing to deliver.
      if ((this.asserting.get(line)?.size ?? 0) === 0) return;
      this.raised.set(line, (this.raised.get(line) ?? 0) + 1);
      this.chip.device_raise_irq(line);
    });
  }

  /** Device `dev` stops asserting `line`; the line goes down now when no device asserts it. */
  deassert(line: number, dev: number): void {
    const set = this.asserting.get(line);
    if (!set || !set.delete(dev)) return;
    if (set.size === 0 && !this.scheduled.has(line)) this.chip.device_lower_irq(line);
  }
}
