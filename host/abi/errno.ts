// Xen's errno values (xen/include/public/errno.h). Hypercalls return them negated.
export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EMSGSIZE = 90;
export const EOPNOTSUPP = 95;
export const ECONNREFUSED = 111;

const names: Record<number, string> = {
  [EPERM]: "EPERM", [ENOENT]: "ENOENT", [ESRCH]: "ESRCH", [EAGAIN]: "EAGAIN", [ENOMEM]: "ENOMEM",
  [EACCES]: "EACCES", [EFAULT]: "EFAULT", [EBUSY]: "EBUSY", [EEXIST]: "EEXIST", [ENODEV]: "ENODEV",
  [EINVAL]: "EINVAL", [ENOSPC]: "ENOSPC", [EMSGSIZE]: "EMSGSIZE", [EOPNOTSUPP]: "EOPNOTSUPP",
  [ECONNREFUSED]: "ECONNREFUSED",
};

/** "-EAGAIN" for -11, "12 bytes" style results are left to the caller. */
export function errnoName(rc: number): string {
  if (rc >= 0) return String(rc);
  return `-${names[-rc] ?? `E${-rc}`}`;
}
