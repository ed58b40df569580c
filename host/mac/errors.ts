// Errors of the MAC layer: PolicyError for a bad policy file (always with file:line:col),
// and the errno values the hooks return. The numbers are Xen's (xen/include/public/errno.h),
// kept here so that host/mac depends on nothing in host/hypervisor.

/** Flask denial: avc_has_perm returns -EACCES. */
export const EACCES = 13;
/** Ring larger than the pair allows: what Xen's register_ring returns for a bad `len`. */
export const EINVAL = 22;
/** Message larger than the pair allows: what Xen's sendv returns for an over-long message. */
export const EMSGSIZE = 90;
/** Rate limit exceeded: Xen's transient "try again". */
export const EAGAIN = 11;

/** Errno names for audit lines. */
export function errnoLabel(errno: number): string {
  switch (-errno) {
    case EACCES:
      return "-EACCES";
    case EINVAL:
      return "-EINVAL";
    case EMSGSIZE:
      return "-EMSGSIZE";
    case EAGAIN:
      return "-EAGAIN";
    default:
      return String(errno);
  }
}

/**
 * A policy file is wrong. `message` is `file:line:col: what is wrong` (line and col
 * count from 1; a file that cannot be read at all has line 0 and the message is
 * `file: what`). `others` holds further errors found in the same pass, in file order,
 * so a user can fix several at once; the first one is this error itself.
 */
export class PolicyError extends Error {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** The message without the position prefix. */
  readonly what: string;
  /** Further errors in the same file, in file order (excluding this one). */
  others: readonly PolicyError[] = [];

  constructor(file: string, line: number, col: number, what: string) {
    super(line > 0 ? `${file}:${line}:${col}: ${what}` : `${file}: ${what}`);
    this.name = "PolicyError";
    this.file = file;
    this.line = line;
    this.col = col;
    this.what = what;
  }

  /** Sorts errors into file order and returns the first, carrying the rest. */
  static first(errors: PolicyError[]): PolicyError {
    const sorted = [...errors].sort((a, b) => a.line - b.line || a.col - b.col);
    const head = sorted[0];
    head.others = sorted.slice(1);
    return head;
  }
}
