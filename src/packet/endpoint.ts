/** An underlay address and UDP port: where a datagram came from or goes to. */
export interface Endpoint {
  address: string;
  port: number;
}
