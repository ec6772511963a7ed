/**
 * The TUN side of the dataplane, batched in the shape of wireguard-go's tun.Device:
 * the caller owns the buffers; every packet sits at `offset` in its buffer so the
 * engine can write Ethernet + VXLAN into the headroom in front of it without a copy.
 */
/**
 * The caller's side of write's `refused` contract: after a write of `count` packets that took `took`,
 * keeps the device's marks when they add up to count - took, and otherwise (a device that only counts,
 * or one that threw) marks the last count - took, as the count alone says.
 */
export function settleRefused(refused: Uint8Array, count: number, took: number): void {
  if (took >= count) return;
  let marked = 0;
  for (let k = 0; k < count; k++) marked += refused[k]!;
  if (marked !== count - took) for (let k = 0; k < count; k++) refused[k] = k < took ? 0 : 1;
}

export interface TunDevice {
  readonly name: string;
  readonly mtu: number;
  /**
   * Non-blocking batched read: fills bufs[i] from `offset` with one IP packet each and sets
   * sizes[i] to its length. Returns how many packets were read (0 when none is waiting).
   * A packet longer than a buffer's room is truncated by the kernel; callers size buffers
   * to offset + mtu at least.
   */
  read(bufs: Buffer[], sizes: number[], offset: number): number;
  /**
   * Batched write of `count` packets, each at `offset` in bufs[i] with length sizes[i].
   * Returns how many were accepted; a packet the kernel refuses is skipped, not retried.
   * With `gsoSizes` (only where `writesSuperPackets`), gsoSizes[i] > 0 marks packet i as a TCP
   * packet larger than the MTU, to be cut by the kernel into segments of that many payload bytes.
   * With `refused` (a byte per packet, zeroed by the caller), a device that can tell sets refused[i] = 1
   * for each packet that did not go in; one that refuses nothing may leave it alone. The caller checks
   * that the marks add up to count - returned, and otherwise takes the first `returned` as the ones that went.
   */
  write(bufs: Buffer[], sizes: number[], offset: number, count: number, gsoSizes?: readonly number[], refused?: Uint8Array): number;
  /** True when write() takes TCP super-packets whole (gsoSizes); absent or false: segment them first. */
  readonly writesSuperPackets?: boolean;
  /** Calls `onReadable` from the event loop whenever packets are waiting. Never blocks the loop. */
  start(onReadable: () => void): void;
  /**
   * Stops readiness callbacks, the device staying open (the pipeline stopped: readiness it would not
   * act on must not spin the event loop until close). Absent: nothing to stop.
   */
  stopReading?(): void;
  /** Stops readiness callbacks and closes the device (a non-persistent TUN vanishes with its routes). */
  close(): void;
}
