/**
 * Frames the kernel put on the underlay (tcpdump -xx on a test namespace's eth0), used by more than
 * one wire test. Each comment is tcpdump's own decode of the frame.
 */
import { hex } from './wire.js';

/**
 * IP (tos 0x0, ttl 64, id 60763, offset 0, flags [none], proto UDP (17), length 154)
 * 198.18.0.1.39192 > 198.18.0.2.8472: [bad udp cksum 0x8cbf -> 0x001b!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP6 (flowlabel 0xc60e6, hlim 64, next-header ICMPv6 (58) payload length: 64) fd00:1::1 > fd00:2::1: [icmp6 sum ok] ICMP6, echo request, id 9497, seq 1
 */
export const ICMPV6_ECHO_REQUEST = hex(`
  3e1b6ca911926a315ae6cf8108004500009aed5b0000401100d0c6120001c61200029918211800868cbf080000000000
  01000a580af402000a580af4010086dd600c60e600403a40fd000001000000000000000000000001fd00000200000000
  0000000000000001800022db251900013a4d036b0000000037fe090000000000101112131415161718191a1b1c1d1e1f
  202122232425262728292a2b2c2d2e2f3031323334353637
`);

/**
 * IP (tos 0x0, ttl 64, id 27266, offset 0, flags [none], proto UDP (17), length 113)
 * 198.18.0.2.49946 > 198.18.0.1.8472: [bad udp cksum 0x8c96 -> 0x5041!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP (tos 0xc0, ttl 64, id 20266, offset 0, flags [none], proto ICMP (1), length 63)
 * 10.244.2.0 > 10.244.1.0: ICMP 10.244.2.0 udp port 9 unreachable, length 43
 * IP (tos 0x0, ttl 64, id 58442, offset 0, flags [DF], proto UDP (17), length 35)
 * 10.244.1.0.45844 > 10.244.2.0.9: [bad udp cksum 0x1908 -> 0xbc86!] UDP, length 7
 */
export const ICMP_PORT_UNREACHABLE = hex(`
  6a315ae6cf813e1b6ca911920800450000716a820000401183d2c6120002c6120001c31a2118005d8c96080000000000
  01000a580af401000a580af40200080045c0003f4f2a0000400111ed0af402000af401000303b9830000000045000023
  e44a400040113d980af401000af40200b3140009000f1908636c6f7365643f
`);

/**
 * IP (tos 0x0, ttl 64, id 60753, offset 0, flags [none], proto UDP (17), length 146)
 * 198.18.0.1.35490 > 198.18.0.2.8472: [bad udp cksum 0x8cb7 -> 0x4dcb!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP6 (hlim 1, next-header Options (0) payload length: 56) :: > ff02::16: HBH (rtalert: 0x0000) (padn) [icmp6 sum ok] ICMP6, multicast listener report v2, 2 group record(s) [gaddr ff02::1:ff00:1 to_ex { }] [gaddr ff02::1:fff4:100 to_ex { }]
 */
export const MLD_REPORT_HOP_BY_HOP = hex(`
  3e1b6ca911926a315ae6cf81080045000092ed510000401100e2c6120001c61200028aa22118007e8cb7080000000000
  01003333000000160a580af4010086dd600000000038000100000000000000000000000000000000ff02000000000000
  00000000000000163a000502000001008f006b7b0000000204000000ff0200000000000000000001ff00000104000000
  ff0200000000000000000001fff40100
`);

/**
 * IP (tos 0x0, ttl 64, id 60669, offset 0, flags [none], proto UDP (17), length 122)
 * 198.18.0.1.33636 > 198.18.0.2.8472: [bad udp cksum 0x8c9f -> 0x5966!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP6 (hlim 255, next-header ICMPv6 (58) payload length: 32) :: > ff02::1:fff4:100: [icmp6 sum ok] ICMP6, neighbor solicitation, length 32, who has fe80::858:aff:fef4:100
 * unknown option (14), length 8 (1):
 */
export const NEIGHBOR_SOLICIT_DAD = hex(`
  3e1b6ca911926a315ae6cf8108004500007aecfd00004011014ec6120001c61200028364211800668c9f080000000000
  01003333fff401000a580af4010086dd6000000000203aff00000000000000000000000000000000ff02000000000000
  00000001fff401008700979300000000fe8000000000000008580afffef401000e01694f9706c0f4
`);

/**
 * IP (tos 0x0, ttl 64, id 30833, offset 0, flags [none], proto UDP (17), length 130)
 * 198.18.0.1.60382 > 198.18.0.2.8472: [bad udp cksum 0x598e -> 0x6f89!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP6 (flowlabel 0xde8a7, hlim 64, next-header TCP (6) payload length: 40) fd00:1::1.57208 > fd00:2::1.5202: Flags [S], cksum 0xfa34 (incorrect -> 0x1030), seq 32306759, win 65330, options [mss 1390,sackOK,TS val 3074202526 ecr 0,nop,wscale 10], length 0
 */
export const TCP6_SYN = hex(`
  2e5b2542472e5a4bf45689f708004500008278710000401175d2c6120001c6120002ebde2118006e598e080000000000
  01000a580af402000a580af4010086dd600de8a700280640fd000001000000000000000000000001fd00000200000000
  0000000000000001df78145201ecf64700000000a002ff32fa3400000204056e0402080ab73c9b9e000000000103030a
`);

/**
 * IP (tos 0x0, ttl 64, id 30829, offset 0, flags [none], proto UDP (17), length 110)
 * 198.18.0.1.35003 > 198.18.0.2.8472: [bad udp cksum 0xa3bc -> 0xc208!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP (tos 0x0, ttl 64, id 45372, offset 0, flags [DF], proto TCP (6), length 60)
 * 10.244.1.0.36076 > 10.244.2.0.5201: Flags [S], cksum 0x1916 (incorrect -> 0x3762), seq 4282064996, win 64860, options [mss 1410,sackOK,TS val 4203233058 ecr 0,nop,wscale 10], length 0
 */
export const TCP_SYN = hex(`
  2e5b2542472e5a4bf45689f708004500006e786d0000401175eac6120001c612000288bb2118005aa3bc080000000000
  01000a580af402000a580af4010008004500003cb13c4000400670980af401000af402008cec1451ff3b206400000000
  a002fd5c19160000020405820402080afa883f22000000000103030a
`);

/**
 * IP (tos 0x0, ttl 64, id 60772, offset 0, flags [none], proto UDP (17), length 105)
 * 198.18.0.1.50713 > 198.18.0.2.8472: [bad udp cksum 0x3169 -> 0x31e8!] OTV, flags [I] (0x08), overlay 0, instance 1
 * IP6 (flowlabel 0x72bd5, hlim 64, next-header UDP (17) payload length: 15) fd00:1::1.40150 > fd00:2::1.9: [bad udp cksum 0xfa26 -> 0xfaa5!] UDP, length 7
 */
export const UDP6_TO_CLOSED_PORT = hex(`
  3e1b6ca911926a315ae6cf81080045000069ed640000401100f8c6120001c6120002c619211800553169080000000000
  01000a580af402000a580af4010086dd60072bd5000f1140fd000001000000000000000000000001fd00000200000000
  00000000000000019cd60009000ffa26636c6f73656436
`);
