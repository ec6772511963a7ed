/**
 * The tour's narrative in English and Chinese (`vxtun lab tour --lang zh`). The Chinese follows the
 * words of the Chinese flannel/CNI literature (docs/terminology.md): 封装/解封装, 路由表, 网桥, 租约,
 * VTEP, 底层网络. Numbers, addresses, counter names and protocol names stay as they are.
 */
import type { Lang } from '../../trace/i18n.js';

type P = Record<string, string | number | undefined>;

export interface TourText {
  /** A node's kind: vxtun, or the kernel's VXLAN. */
  kind(kind: string): string;
  node(p: P): string;
  header(p: P): string;
  pingTitle(p: P): string;
  inNs(ns: string): string;
  nothing: string;
  step1: string;
  step1Env: string;
  step2(p: P): string;
  step2Tun: string;
  step2Kernel: string;
  step3: string;
  step3Vxtun(p: P): string;
  thisPing: string;
  step3Kernel(p: P): string;
  step4(p: P): string;
  noVxtunNode: string;
  noPacket: string;
  kernelTakesOver(p: P): string;
  noKernelHops(p: P): string;
  kernelHops(p: P): string;
  tunWriteLate: string;
  step5: string;
  counted(p: P): string;
  done: string;
  failed: string;
  needTwo: string;
  // explainJourney: one line per observation point
  tunRead(p: P): string;
  classify(p: P): string;
  classifyNone(p: P): string;
  encap(p: P): string;
  udpSend(p: P): string;
  portFixed: string;
  portHashed(p: P): string;
  udpRecv(p: P): string;
  recvHashed: string;
  decapOk(p: P): string;
  fixedWith(p: P): string;
  decapDropped(p: P): string;
  tunWrite(p: P): string;
  answer(p: P): string;
}

const en: TourText = {
  kind: (k) => k,
  node: (p) => `node ${p.index} ${p.kind} ${p.ip}`,
  header: (p) => `vxtun lab tour · lab ${p.prefix} · ${p.nodes}`,
  pingTitle: (p) => `a ping from the pod on node ${p.from} (${p.fromKind}) to the pod on node ${p.to} (${p.toKind}): ${p.src} → ${p.dst}`,
  inNs: (ns) => `# in ${ns}`,
  nothing: '(nothing)',
  step1: 'Step 1 · the pod. It knows nothing about VXLAN: its route sends the whole pod network to its gateway, the cni0 bridge on its node.',
  step1Env: "  The CNI bridge plugin made that route, the pod's address and cni0, from the node's subnet.env (what flanneld writes):",
  step2: (p) => `Step 2 · node ${p.node}'s route table. The destination is in another node's subnet, so the kernel sends it to ${p.where}.`,
  step2Tun: 'the TUN device vxtun0: from here on vxtun handles it',
  step2Kernel: 'flannel.1, the kernel VXLAN device',
  step3: 'Step 3 · the VTEP table: which node owns which pod subnet, and the MAC of its VXLAN endpoint.',
  step3Vxtun: (p) => `  vxtun on node ${p.node} (vxtun status):`,
  thisPing: '← this ping',
  step3Kernel: (p) => `  On node ${p.node} the kernel keeps the same table as flanneld programs it, in three places — route, neighbour (ARP), forwarding database:`,
  step4: (p) => `Step 4 · the trace of one ping, layer by layer (\`${p.command}\`):`,
  noVxtunNode: '  (every node here runs the kernel VXLAN: there is no vxtun node to trace — bring the lab up with a vxtun node to see this step)',
  noPacket: '  (no packet was traced)',
  kernelTakesOver: (p) => `then node ${p.node}'s kernel VXLAN device takes the datagram: it checks the VNI, strips the headers and routes the packet to its pod — the same steps, in the kernel.`,
  noKernelHops: (p) => `  (the kernel's hops are not shown: ${p.why})`,
  kernelHops: (p) =>
    `kernel hops: a packet socket in each namespace of the lab saw the packet ${p.n} times (${p.devices}). The kernel stamps packets with the wall clock (CLOCK_REALTIME); the capturer maps that onto CLOCK_MONOTONIC with the offset between the two clocks read as each packet arrives, the clock vxtun stamps its own points with — so one time order holds for both.`,
  tunWriteLate:
    'tun-write comes after the pod already got the packet: vxtun stamps it when its write into the TUN device returned, and within that write the kernel took the packet through vxtun0, cni0 and the veth pair to the pod.',
  step5: 'Step 5 · what the vxtun nodes counted (vxtun status): every packet ends forwarded, answered or dropped under a named reason.',
  counted: (p) => `    node ${p.node}: forwarded ${p.out} out, ${p.in} in · answered ${p.answered} · dropped: ${p.drops}`,
  done: 'tour done: try `vxtun lab exec pod1 -- ping ...` with `vxtun trace --socket ...` or `--web` beside it; `vxtun lab down` when finished.',
  failed: 'tour FAILED: a ping did not cross',
  needTwo: 'the tour needs at least two nodes',
  tunRead: (p) => `tun-read: the kernel on ${p.node} routed the pod's packet (${p.inner}, ${p.length} bytes) into ${p.device}; vxtun read it from the TUN device.`,
  classify: (p) => `classify: longest-prefix match on the destination: route ${p.route} belongs to node ${p.peer}, whose VTEP MAC is ${p.mac} (VNI ${p.vni}).`,
  classifyNone: (p) => `classify: no route for the destination: ${p.verdict}.`,
  encap: (p) => `encap: vxtun wrote 8 bytes of VXLAN (I flag, VNI ${p.vni}) and 14 bytes of inner Ethernet (${p.src} → ${p.dst}) in front of the packet: ${p.before} → ${p.after} bytes.`,
  udpSend: (p) => `udp-send: one UDP datagram from ${p.local} to ${p.remote}; the kernel adds outer IPv4 + UDP (28 bytes), so ${p.wire} bytes cross the underlay. `,
  portFixed: `The source port is the node's own VXLAN port: this node keeps it fixed ("sourcePorts": "fixed"; by default vxtun, like the kernel, picks a port from a hash of the inner flow, so routers can spread flows over paths).`,
  portHashed: (p) => `The source port ${p.port} comes from a hash of the inner flow, so routers can spread flows over paths (RFC 7348).`,
  udpRecv: (p) => `udp-recv: node ${p.node} received ${p.wire} bytes from ${p.remote} on port ${p.port}`,
  recvHashed: ' (the sender picked its source port from a hash of the inner flow, as the kernel and vxtun do by default).',
  decapOk: (p) => `decap: the checks passed — I flag set, VNI ${p.vni} is ours, inner destination MAC ${p.mac} is our VTEP, the inner IP header holds together${p.fixes}. The 22 outer-most bytes are dropped.`,
  fixedWith: (p) => `; fixed: ${p.fixes}`,
  decapDropped: (p) => `decap: dropped (${p.verdict}): ${p.why}`,
  tunWrite: (p) => `tun-write: the inner packet (${p.length} bytes) was written into ${p.device}; the kernel routes it on to the pod over cni0.`,
  answer: (p) => `answer: vxtun answered itself: ${p.verdict}.`,
};

const zh: TourText = {
  kind: (k) => (k === 'kernel' ? '内核 VXLAN' : k),
  node: (p) => `节点 ${p.index} ${p.kind} ${p.ip}`,
  header: (p) => `vxtun 实验环境导览 · 实验环境 ${p.prefix} · ${p.nodes}`,
  pingTitle: (p) => `从节点 ${p.from}（${p.fromKind}）上的 Pod ping 节点 ${p.to}（${p.toKind}）上的 Pod：${p.src} → ${p.dst}`,
  inNs: (ns) => `# 在 ${ns} 中执行`,
  nothing: '（无输出）',
  step1: '第 1 步 · Pod。它对 VXLAN 一无所知：它的路由把整个 Pod 网络都交给网关，即所在节点上的 cni0 网桥。',
  step1Env: '  这条路由、Pod 的地址和 cni0 由 CNI bridge 插件根据节点的 subnet.env（flanneld 写入的文件）生成：',
  step2: (p) => `第 2 步 · 节点 ${p.node} 的路由表。目的地址属于另一个节点的子网，所以内核把它交给${p.where}。`,
  step2Tun: ' TUN 设备 vxtun0：从这里起由 vxtun 处理',
  step2Kernel: '内核的 VXLAN 设备 flannel.1',
  step3: '第 3 步 · VTEP 表：哪个节点拥有哪个 Pod 子网，以及它的 VXLAN 端点（VTEP）的 MAC 地址。',
  step3Vxtun: (p) => `  节点 ${p.node} 上的 vxtun（\`vxtun status\`）：`,
  thisPing: '← 本次 ping',
  step3Kernel: (p) => `  在节点 ${p.node} 上，内核按 flanneld 的配置把同一张表保存在三处 —— 路由表、邻居表（ARP）、转发数据库（FDB）：`,
  step4: (p) => `第 4 步 · 逐层追踪一次 ping（\`${p.command}\`）：`,
  noVxtunNode: '  （这里的节点都运行内核 VXLAN，没有可追踪的 vxtun 节点 —— 启动实验环境时加入一个 vxtun 节点即可看到这一步）',
  noPacket: '  （没有追踪到数据包）',
  kernelTakesOver: (p) => `随后节点 ${p.node} 的内核 VXLAN 设备接收该数据报：检查 VNI，剥去外层头部，再把数据包路由给它的 Pod —— 步骤相同，只是在内核中完成。`,
  noKernelHops: (p) => `  （未显示内核的各跳：${p.why}）`,
  kernelHops: (p) =>
    `内核各跳：实验环境每个网络命名空间中的包套接字共 ${p.n} 次看到这个数据包（${p.devices}）。内核用墙上时钟（CLOCK_REALTIME）给数据包打时间戳；捕获程序在每个包到达时读取两个时钟之差，把它换算到 CLOCK_MONOTONIC —— vxtun 给自己的观测点打时间戳用的就是这个时钟，所以两者按同一时间顺序排列。`,
  tunWriteLate: 'TUN写入排在 Pod 收到数据包之后：vxtun 在写入 TUN 设备的调用返回时才记下时间，而在这次写入之中，内核已经把数据包经 vxtun0、cni0 和 veth 对送到了 Pod。',
  step5: '第 5 步 · vxtun 节点的计数（`vxtun status`）：每个数据包的结局都是已转发、已应答，或按具名原因丢弃。',
  counted: (p) => `    节点 ${p.node}：已转发 发出 ${p.out}、收到 ${p.in} · 已应答 ${p.answered} · 已丢弃：${p.drops}`,
  done: '导览完成：可以试试 `vxtun lab exec pod1 -- ping ...`，同时在旁边运行 `vxtun trace --socket ...` 或 `--web`；结束后执行 `vxtun lab down`。',
  failed: '导览失败：有一次 ping 没有到达',
  needTwo: '导览至少需要两个节点',
  tunRead: (p) => `TUN读取：节点 ${p.node} 的内核把 Pod 的数据包（${p.inner}，${p.length} 字节）路由进 ${p.device}；vxtun 从 TUN 设备读到它。`,
  classify: (p) => `路由查找：对目的地址做最长前缀匹配：路由 ${p.route} 属于节点 ${p.peer}，其 VTEP MAC 为 ${p.mac}（VNI ${p.vni}）。`,
  classifyNone: (p) => `路由查找：目的地址没有路由：${p.verdict}。`,
  encap: (p) => `封装：vxtun 在数据包前写入 8 字节 VXLAN 头（I 标志，VNI ${p.vni}）和 14 字节内层以太网头（${p.src} → ${p.dst}）：${p.before} → ${p.after} 字节。`,
  udpSend: (p) => `UDP发送：一个 UDP 数据报从 ${p.local} 发往 ${p.remote}；内核再加上外层 IPv4 + UDP 头（28 字节），所以底层网络上传输 ${p.wire} 字节。`,
  portFixed: '源端口就是本节点自己的 VXLAN 端口：本节点把它固定不变（"sourcePorts": "fixed"；默认情况下 vxtun 和内核一样，按内层流的哈希选取源端口，便于路由器把不同的流分散到多条路径上）。',
  portHashed: (p) => `源端口 ${p.port} 由内层流的哈希得出，便于路由器把不同的流分散到多条路径上（RFC 7348）。`,
  udpRecv: (p) => `UDP接收：节点 ${p.node} 在端口 ${p.port} 上收到来自 ${p.remote} 的 ${p.wire} 字节`,
  recvHashed: '（发送方按内层流的哈希选取源端口，内核和 vxtun 默认都这样做）。',
  decapOk: (p) => `解封装：检查通过 —— I 标志已置位，VNI ${p.vni} 属于本节点，内层目的 MAC ${p.mac} 是本节点的 VTEP，内层 IP 头完整一致${p.fixes}。最外层的 22 字节被剥去。`,
  fixedWith: (p) => `；已修正：${p.fixes}`,
  decapDropped: (p) => `解封装：已丢弃（${p.verdict}）：${p.why}`,
  tunWrite: (p) => `TUN写入：内层数据包（${p.length} 字节）被写入 ${p.device}；内核再经 cni0 网桥把它路由给 Pod。`,
  answer: (p) => `应答：vxtun 自行应答：${p.verdict}。`,
};

export function tourText(lang: Lang): TourText {
  return lang === 'zh' ? zh : en;
}
