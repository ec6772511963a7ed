/**
 * Why a view refused untrusted bytes. check() functions return one of these instead of
 * throwing: nothing that arrives off the wire may throw. Each is a shared singleton, so a
 * refusal allocates nothing and compares by identity; `reason` is the name of the drop counter.
 */
export class WireError {
  private constructor(readonly reason: string) {}
  static readonly Truncated = new WireError('truncated');
  static readonly BadVersion = new WireError('bad-version');
  static readonly BadHeaderLength = new WireError('bad-header-length');
  static readonly BadTotalLength = new WireError('bad-total-length');
  static readonly BadFlags = new WireError('bad-flags');
  static readonly ReservedBitsSet = new WireError('reserved-bits-set');
  static readonly Unsupported = new WireError('unsupported');
  static readonly BadChecksum = new WireError('bad-checksum');
  /** A message type (ICMP, ARP operation, …) this view does not handle. */
  static readonly BadType = new WireError('bad-type');
}

export function isWireError(value: unknown): value is WireError {
  return value instanceof WireError;
}
