/**
 * View reuse for the per-packet hot paths. `check(buf, offset, length, reuse)` re-points a view the
 * caller keeps instead of allocating one per packet: at 600 k packets/s those views were most of
 * the data path's garbage, and they grew V8's young generation (and the RSS) by tens of MiB.
 * A re-pointed view no longer shows its previous bytes: whoever reuses a view keeps none.
 */
interface ViewBytes {
  buf: Buffer;
  offset: number;
  length: number;
}

export function repoint<V>(view: V, buf: Buffer, offset: number, length: number): V {
  const v = view as unknown as ViewBytes;
  v.buf = buf;
  v.offset = offset;
  v.length = length;
  return view;
}

/** What a scratch view shows before its first successful check: nothing. */
export const NO_BYTES: Buffer = Buffer.alloc(0);
