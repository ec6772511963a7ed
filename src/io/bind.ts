/**
 * The underlay side of the dataplane, batched in the shape of wireguard-go's conn.Bind.
 * Datagrams are VXLAN headers + inner frame; the OS adds the outer IP/UDP headers.
 */
import type { Endpoint } from '../packet/endpoint.js';
export type { Endpoint } from '../packet/endpoint.js';

/** Receives a batch: bufs[i][0, sizes[i]) arrived from srcs[i]. The buffers are valid only during the call. */
export type ReceiveFn = (bufs: Buffer[], sizes: number[], srcs: Endpoint[], count: number) => void;

export interface Bind {
  /** Local address and port actually bound. */
  readonly local: Endpoint;
  /**
   * Sends `count` datagrams, each bufs[i][offset, offset + sizes[i]), to one destination.
   * The bind does not keep the buffers after the call returns: the caller may reuse them.
   * Returns how many were handed to the OS; a send error is counted, never thrown.
   */
  send(bufs: Buffer[], sizes: number[], offset: number, count: number, dst: Endpoint): number;
  /**
   * Where the datagram buf[offset, offset + length) leaves from: `local`, unless this bind sends
   * from flow-hashed source ports (RFC 7348 §5). For traces; absent means always `local`.
   */
  sourceOf?(buf: Buffer, offset: number, length: number): Endpoint;
  start(onReceive: ReceiveFn): void;
  close(): Promise<void>;
}
