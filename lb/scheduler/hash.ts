// Fast non-cryptographic hashing for sh: FNV-1a 32 over UTF-16 code units, then murmur3's
// fmix32 finalizer so that keys differing only in their last characters (10.0.0.1,
// 10.0.0.2, ...) land far apart. Pure, allocation-free.

/** murmur3's 32-bit finalizer: a bijection with full avalanche. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash `s` from index `start` to a uint32; distinct seeds give unrelated hash functions. */
export function hashString(s: string, seed = 0, start = 0): number {
  let h = (0x811c9dc5 ^ Math.imul(seed, 0x9e3779b1)) >>> 0;
  for (let i = start; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

const V4_MAPPED = '::ffff:';

/**
 * Hash a client IP address as text. An IPv4-mapped IPv6 address ("::ffff:10.0.0.1", what a
 * dual-stack socket reports) hashes as its IPv4 form, so a client keeps its backend whichever
 * way the listener was bound.
 */
export function hashClient(client: string): number {
  const start = client.length > V4_MAPPED.length && client.startsWith(V4_MAPPED) && client.includes('.', V4_MAPPED.length) ? V4_MAPPED.length : 0;
  return hashString(client, 0, start);
}
