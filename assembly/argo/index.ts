export function probe(a: u32): u32 { return load<u32>(a); }
