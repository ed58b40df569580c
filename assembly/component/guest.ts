// A guest written as a WebAssembly component (world `argo-guest` in wit/argo.wit): it
// speaks Argo only through the WIT imports, never through Xen's structs. Built by
// scripts/build-component.mjs (core module -> component -> ES module via jco-transpile),
// not by build-wasm.mjs: a component owns and exports its memory, where the hot-path
// modules import the domain's.
//
// The canonical ABI by hand (integers in and out, results and options through memory):
//   result<_, errno> / result<u32, errno>: u8 discriminant @0 (0 ok, 1 err), u32 @4
//   option<message>: u8 @0 (1 some), src.domid u16 @4, src.port u32 @8, type u32 @12,
//                    data.ptr u32 @16, data.len u32 @20
//   result<ring-state, errno>: u8 @0, exists u8 @4, sufficient @5, empty @6, max u32 @8
//   list<list<u8>>: {ptr u32, len u32} per element

// @ts-ignore: decorator
@external("virtio-argo:argo/hypercalls@0.1.0", "register-ring")
declare function registerRing(port: u32, partner: u32, dataBytes: u32, ret: usize): void;
// @ts-ignore: decorator
@external("virtio-argo:argo/hypercalls@0.1.0", "unregister-ring")
declare function unregisterRing(port: u32, ret: usize): void;
// @ts-ignore: decorator
@external("virtio-argo:argo/hypercalls@0.1.0", "sendv")
declare function sendv(domid: u32, port: u32, srcPort: u32, messageType: u32, iovs: usize, n: u32, ret: usize): void;
// @ts-ignore: decorator
@external("virtio-argo:argo/hypercalls@0.1.0", "notify")
declare function notify(domid: u32, port: u32, spaceRequired: u32, ret: usize): void;
// @ts-ignore: decorator
@external("virtio-argo:argo/hypercalls@0.1.0", "recv")
declare function recv(port: u32, ret: usize): void;
// @ts-ignore: decorator
@external("virtio-argo:argo/hypercalls@0.1.0", "poll-virq")
declare function pollVirq(): u32;

/** Ring size this guest asks for. */
const RING_BYTES: u32 = 65536;
/** Scratch arena for lists the host hands us (cabi_realloc), reset per message. */
const ARENA_BYTES: usize = 1 << 20;

let myPort: u32 = 0;
let retArea: usize = 0;
let arena: usize = 0;
let arenaUsed: usize = 0;

function area(): usize {
  if (retArea == 0) retArea = heap.alloc(64);
  return retArea;
}

function arenaBase(): usize {
  if (arena == 0) arena = heap.alloc(ARENA_BYTES);
  return arena;
}

/** The canonical ABI's allocator: the host calls it to place lists it returns to us. */
export function cabi_realloc(oldPtr: usize, oldSize: usize, align: usize, newSize: usize): usize {
  const base = arenaBase();
  const at = (arenaUsed + align - 1) & ~(align - 1);
  if (oldPtr == 0 && at + newSize <= ARENA_BYTES) {
    arenaUsed = at + newSize;
    return base + at;
  }
  // Larger than the arena, or a real reallocation: from the heap (never freed: stub runtime).
  const p = heap.alloc(newSize);
  if (oldPtr != 0) memory.copy(p, oldPtr, min(oldSize, newSize));
  return p;
}

export function start(partner: u32, port: u32): usize {
  const r = area();
  registerRing(port, partner, RING_BYTES, r);
  if (load<u8>(r) == 0) myPort = port;
  return r;
}

export function serve(max: u32, replyPort: u32): u32 {
  const r = area();
  const iov = r + 32;
  const sent = r + 48;
  let answered: u32 = 0;
  for (let i: u32 = 0; i < max; i++) {
    arenaUsed = 0; // the previous message's bytes are no longer needed
    recv(myPort, r);
    if (load<u8>(r) == 0) break; // ring empty
    const domid = <u32>load<u16>(r + 4);
    const type = load<u32>(r + 12);
    const ptr = <usize>load<u32>(r + 16);
    const len = <usize>load<u32>(r + 20);
    for (let k: usize = 0; k < len; k++) store<u8>(ptr + k, load<u8>(ptr + k) ^ 0x5a);
    store<u32>(iov, <u32>ptr);
    store<u32>(iov + 4, <u32>len);
    sendv(domid, replyPort, myPort, type, iov, 1, sent);
    if (load<u8>(sent) == 0) answered++;
  }
  return answered;
}

export function greet(domid: u32, port: u32, len: u32, seed: u32): usize {
  const r = area();
  arenaUsed = 0;
  const buf = cabi_realloc(0, 0, 1, <usize>len);
  for (let k: u32 = 0; k < len; k++) store<u8>(buf + k, <u8>((seed + k) & 0xff));
  const iov = r + 32;
  store<u32>(iov, <u32>buf);
  store<u32>(iov + 4, len);
  sendv(domid, port, myPort, 1, iov, 1, r);
  return r;
}

export function room(domid: u32, port: u32): usize {
  const r = area();
  notify(domid, port, 0, r + 16);
  store<u8>(r, load<u8>(r + 16));
  // ok: the max message size (ring-state @8 of the notify result); err: the errno (@4).
  store<u32>(r + 4, load<u8>(r + 16) == 0 ? load<u32>(r + 24) : load<u32>(r + 20));
  return r;
}

export function signalled(): u32 {
  return pollVirq();
}

export function stop(): usize {
  const r = area();
  unregisterRing(myPort, r);
  return r;
}
