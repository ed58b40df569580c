// Errors the embedding API throws. Each has a stable `code` a VMM can switch on and a
// `hint` that says what to do about it; `message` says what happened.

export class VmmError extends Error {
  readonly code: string;
  readonly hint: string;

  constructor(code: string, message: string, hint: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.hint = hint;
  }

  /** One line for a log or a terminal: what happened, then what to do. */
  describe(): string {
    return `${this.message} (${this.hint})`;
  }
}

/** The policy has no pair for these labels and this device, or a device rule forbids the request. */
export class PairDenied extends VmmError {
  constructor(message: string) {
    super("PAIR_DENIED", message, "add the pair to the policy file; `virtio-argo policy explain FILE --from A --to B --device T` says what is missing");
  }
}

/** A device pair was described wrongly (missing disk, unknown transport or device type). */
export class DeviceSpecError extends VmmError {
  constructor(message: string, hint: string) {
    super("DEVICE_SPEC", message, hint);
  }
}

/** Hotplug over the bus needs the guest to register a wildcard ring, which its label may not do. */
export class HotplugUnavailable extends VmmError {
  constructor(message: string) {
    super("HOTPLUG_UNAVAILABLE", message, "grant register_any_source to the guest's label in one of its pairs, or attach devices before the guest uses them");
  }
}

/** A domain is unknown, dead, or was asked for something its state does not allow. */
export class DomainError extends VmmError {
  constructor(message: string, hint: string) {
    super("DOMAIN", message, hint);
  }
}

/** A run config file is wrong: `message` is `file:line:col: what`. */
export class ConfigError extends VmmError {
  readonly file: string;
  readonly line: number;
  readonly col: number;

  constructor(file: string, line: number, col: number, what: string) {
    super("CONFIG", line > 0 ? `${file}:${line}:${col}: ${what}` : `${file}: ${what}`, "fix the config file at that position");
    this.file = file;
    this.line = line;
    this.col = col;
  }
}
