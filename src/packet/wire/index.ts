/** The wire layer: typed views over Buffers, one module per protocol. */
export * from './error.js';
export * from './checksum.js';
export * from './ethernet.js';
export * from './vxlan.js';
export * from './arp.js';
export * from './ipv4.js';
export * from './ipv6.js';
export * from './icmpv4.js';
export * from './icmpv6.js';
export * from './udp.js';
export * from './tcp.js';
export * from './l4checksum.js';
export * from './virtio-net.js';
