/**
 * Labels and plain-word explanations for traces, in English and Chinese (much of the flannel
 * learning material is Chinese). Verdict names themselves stay as they are in both languages:
 * they are the counter names `vxtun status` shows.
 */
export type Lang = 'en' | 'zh';

export interface Labels {
  points: Record<string, string>;
  route: string;
  node: string;
  vtep: string;
  from: string;
  onWire: string;
  dropped: string;
  answered: string;
  checksPassed: string;
  fixes: string;
  noRoute: string;
  underlay: string;
  across: string;
  innerEthernet: string;
  echoRequest: string;
  echoReply: string;
  arpRequest: string;
  arpReply: string;
  /** Marks a stage the express path (native, lone packets) did rather than the pipeline. */
  expressPath: string;
  /** In place of a transit time between nodes whose clocks are not known to agree. */
  clocksDiffer: string;
  /** Said under a control-socket error that means no node runs there. */
  noNodeHint: string;
  /** "{bytes} B on the wire" */
  flags: string;
  out: string;
  in: string;
  wire: string;
  icmpType: string;
  icmpCode: string;
  /** "{n} packet(s) not traced ..." */
  untraced: string;
  forwarded: string;
  /** classify's decision for a packet that cannot be forwarded ({kind}: the answer kind). */
  answerWith: string;
  /** Why an answered packet could not be forwarded (its `cause`). */
  causes: Record<string, string>;
  /** What each answer tells the sender. */
  answers: Record<string, string>;
  reasons: Record<string, string>;
  verdicts: Record<string, string>;
  /** The whole path (kernel hops merged in): its heading, who saw each hop, and what each device is. */
  wholePath: string;
  hopBy: { kernel: string; vxtun: string };
  pod: string;
  hopRoles: Record<string, string>;
}

const en: Labels = {
  points: {
    'tun-read': 'tun-read',
    classify: 'classify',
    encap: 'encap',
    'udp-send': 'udp-send',
    'udp-recv': 'udp-recv',
    decap: 'decap',
    'tun-write': 'tun-write',
    answer: 'answer',
  },
  route: 'route',
  node: 'node',
  vtep: 'vtep',
  from: 'from',
  onWire: '{bytes} B on the wire',
  flags: 'flags',
  out: 'out',
  in: 'in',
  wire: 'wire',
  icmpType: 'type',
  icmpCode: 'code',
  untraced: '{n} packet(s) not traced (over the trace budget or the client was too slow)',
  dropped: 'dropped',
  answered: 'answered',
  checksPassed: 'checks passed (flags, VNI, inner Ethernet, dst MAC, inner IP)',
  fixes: 'fixed',
  noRoute: 'no route',
  underlay: 'underlay',
  across: 'across',
  innerEthernet: 'inner Ethernet',
  echoRequest: 'echo request',
  echoReply: 'echo reply',
  arpRequest: 'who-has',
  arpReply: 'is-at',
  expressPath: 'express path',
  noNodeHint: 'hint: no node answers on that control socket: is `vxtun up` running? Name another with --socket PATH or --device NAME',
  clocksDiffer: 'transit not shown: the nodes are on different hosts, whose clocks are not known to agree',
  forwarded: 'forwarded',
  answerWith: 'to be answered with {kind}',
  causes: {
    'no-route': 'no node owns this destination (no lease covers it)',
    'too-big': 'larger than the tunnel carries, and the sender forbade fragmenting it (DF)',
  },
  answers: {
    'icmp-unreachable': 'the sender is told with ICMP Destination Unreachable',
    'icmp-too-big': 'the sender is told the size that fits (ICMP Fragmentation Needed / Packet Too Big)',
    'arp-reply': 'an ARP request for our VTEP address, answered with our VTEP MAC',
  },
  reasons: {
    'tun-malformed': 'the kernel handed us bytes that are not a whole IP packet',
    'ttl-expired': 'the inner TTL would reach 0 (flanneld drops these too)',
    'no-route': 'no node owns this destination (no lease covers it), and no ICMP error may be sent about this packet',
    'too-big': 'larger than the tunnel carries and fragmenting is allowed: VTEPs must not fragment VXLAN',
    'icmp-rate-limited': 'an ICMP error was due but the rate limit was reached',
    'send-failed': 'the underlay socket refused the datagram',
    'unknown-peer': 'sent from an underlay address that is no peer of this node (anti-spoofing)',
    'short-datagram': 'shorter than a VXLAN header (8 bytes)',
    'bad-flags': 'the VXLAN I flag is missing or unknown flag bits are set',
    'reserved-bits-set': 'reserved VXLAN bits are set (the kernel drops these too)',
    'wrong-vni': 'VNI {vni} is not this node\'s VNI {ourVni}',
    'truncated-inner': 'no whole inner Ethernet header after VXLAN',
    'wrong-dst-mac': 'the inner destination MAC {dstMac} is not this node\'s VTEP MAC {ourMac}',
    'unsupported-ethertype': 'the inner frame is neither IPv4, IPv6 nor ARP',
    'malformed-inner-ipv4': 'the inner IPv4 header does not hold together',
    'malformed-inner-ipv6': 'the inner IPv6 header does not hold together',
    'spoofed-source': 'the inner source lies outside the sending peer\'s subnet (anti-spoofing)',
    'not-for-this-node': 'the inner destination is not in this node\'s subnet: a node never relays between peers (anti-spoofing)',
    'malformed-arp': 'the inner ARP packet is malformed',
    'arp-not-for-us': 'an ARP request for an address that is not our VTEP address',
    'arp-ignored': 'an ARP packet that is not a request',
    'tun-write-failed': 'the kernel refused the packet written into the TUN device',
  },
  verdicts: { sent: 'sent', forwarded: 'forwarded', ok: 'ok' },
  wholePath: 'whole path in time order (kernel: seen by a packet socket on the device · vxtun: its own observation points)',
  hopBy: { kernel: 'kernel', vxtun: 'vxtun' },
  pod: 'pod',
  hopRoles: {
    pod: "the pod's eth0, its end of the veth pair",
    veth: "the node's end of the pod's veth pair, a port of cni0",
    bridge: "the cni0 bridge, the pods' gateway",
    tun: 'the TUN device between the kernel and vxtun',
    vxlan: 'the kernel VXLAN device',
    underlay: 'the underlay interface: the outer datagram',
    other: '',
  },
};

const zh: Labels = {
  points: {
    'tun-read': 'TUN读取',
    classify: '路由查找',
    encap: '封装',
    'udp-send': 'UDP发送',
    'udp-recv': 'UDP接收',
    decap: '解封装',
    'tun-write': 'TUN写入',
    answer: '应答',
  },
  route: '路由',
  node: '节点',
  vtep: 'VTEP',
  from: '来自',
  onWire: '线路上 {bytes} 字节',
  flags: '标志',
  out: '发出',
  in: '收到',
  wire: '线路哈希',
  icmpType: '类型',
  icmpCode: '代码',
  untraced: '{n} 个数据包未被追踪（超出追踪预算，或客户端太慢）',
  dropped: '已丢弃',
  answered: '已应答',
  checksPassed: '检查通过（标志位、VNI、内层以太网、目的MAC、内层IP）',
  fixes: '已修正',
  noRoute: '无路由',
  underlay: '底层网络',
  across: '跨越',
  innerEthernet: '内层以太网',
  echoRequest: '回显请求',
  echoReply: '回显应答',
  arpRequest: '询问',
  arpReply: '回答',
  expressPath: '快速路径',
  noNodeHint: '提示：该控制套接字上没有节点应答：`vxtun up` 在运行吗？可用 --socket PATH 或 --device NAME 指定另一个节点',
  clocksDiffer: '不显示传输时间：两个节点在不同主机上，时钟未知是否一致',
  forwarded: '已转发',
  answerWith: '将以 {kind} 应答',
  causes: {
    'no-route': '没有节点拥有该目的地址（没有租约覆盖它）',
    'too-big': '超过隧道可承载的大小，且发送方禁止分片（DF）',
  },
  answers: {
    'icmp-unreachable': '用 ICMP 目的不可达告知发送方',
    'icmp-too-big': '告知发送方可通过的大小（ICMP 需要分片 / 包过大）',
    'arp-reply': '请求本节点 VTEP 地址的 ARP 请求，以本节点 VTEP MAC 应答',
  },
  reasons: {
    'tun-malformed': '内核交给我们的不是完整的IP包',
    'ttl-expired': '内层 TTL 将减为 0（flanneld 同样丢弃）',
    'no-route': '没有节点拥有该目的地址（没有租约覆盖它），且不能为该包发送ICMP错误',
    'too-big': '超过隧道可承载的大小且允许分片：VTEP不得对VXLAN分片',
    'icmp-rate-limited': '本应发送ICMP错误，但已达到速率限制',
    'send-failed': '底层UDP套接字拒绝了该数据报',
    'unknown-peer': '来自不是本节点对端的底层地址（防欺骗）',
    'short-datagram': '比VXLAN头（8字节）还短',
    'bad-flags': 'VXLAN的I标志缺失或设置了未知标志位',
    'reserved-bits-set': '设置了VXLAN保留位（内核同样会丢弃）',
    'wrong-vni': 'VNI {vni} 不是本节点的 VNI {ourVni}',
    'truncated-inner': 'VXLAN之后没有完整的内层以太网头',
    'wrong-dst-mac': '内层目的MAC {dstMac} 不是本节点的VTEP MAC {ourMac}',
    'unsupported-ethertype': '内层帧既不是IPv4、IPv6也不是ARP',
    'malformed-inner-ipv4': '内层IPv4头不完整或不一致',
    'malformed-inner-ipv6': '内层IPv6头不完整或不一致',
    'spoofed-source': '内层源地址不在发送方对端的子网内（防欺骗）',
    'not-for-this-node': '内层目的地址不在本节点的子网内：节点从不在对端之间转发（防欺骗）',
    'malformed-arp': '内层ARP包格式错误',
    'arp-not-for-us': '请求的地址不是本节点的VTEP地址',
    'arp-ignored': '不是ARP请求',
    'tun-write-failed': '内核拒绝了写入TUN设备的包',
  },
  verdicts: { sent: '已发送', forwarded: '已转发', ok: '正常' },
  wholePath: '完整路径，按时间排序（内核：由设备上的包套接字观测 · vxtun：它自己的观测点）',
  hopBy: { kernel: '内核', vxtun: 'vxtun' },
  pod: 'Pod',
  hopRoles: {
    pod: 'Pod 的 eth0，veth 对在 Pod 中的一端',
    veth: 'veth 对在节点中的一端，cni0 网桥的端口',
    bridge: 'cni0 网桥，Pod 的网关',
    tun: '内核与 vxtun 之间的 TUN 设备',
    vxlan: '内核的 VXLAN 设备',
    underlay: '底层网络接口：外层数据报',
    other: '',
  },
};

export function labels(lang: Lang): Labels {
  return lang === 'zh' ? zh : en;
}

export function fill(template: string, values: Record<string, string | number | undefined>): string {
  return template.replace(/\{(\w+)\}/g, (_, k: string) => String(values[k] ?? '?'));
}
