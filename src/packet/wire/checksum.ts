/**
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624), the readable reference
 * the native addon is tested against. Sums are 16-bit ones'-complement sums, folded but not
 * complemented, so partial sums (a pseudo-header, a header, a payload) can be added together.
 */

/** The shape of onesSum, so a faster implementation with the same result (the addon's) can stand in. */
export type OnesSumFn = (buf: Uint8Array, offset: number, length: number, initial?: number) => number;

/** Ones'-complement sum of buf[offset, offset+length) as big-endian 16-bit words, plus `initial`. */
export function onesSum(buf: Uint8Array, offset: number, length: number, initial = 0): number {
  let sum = initial;
  const end = offset + length;
  let i = offset;
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  return fold(sum);
}

/** Folds a 32-bit (or larger, < 2^53) accumulator to 16 bits with end-around carry. */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum field value for data whose ones'-complement sum is `sum`. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** Checksum of a byte range, ready to store (RFC 1071). */
export function internetChecksum(buf: Uint8Array, offset: number, length: number, initial = 0): number {
  return finish(onesSum(buf, offset, length, initial));
}

/** RFC 1624 eqn. 3: the new checksum after one 16-bit word changes from oldWord to newWord. */
export function checksumUpdate(oldChecksum: number, oldWord: number, newWord: number): number {
  return ~fold((~oldChecksum & 0xffff) + (~oldWord & 0xffff) + newWord) & 0xffff;
}
