// The express path built from temporaries, under forced garbage collection. Run as root with
// --expose-gc inside a network namespace of its own (`unshare --net`): every buffer handed to
// expressOpen is created in a function and dropped by the caller, so only the addon can keep it
// alive. Then, `rounds` times: collect, churn the heap (freed buffers get reused), send one packet
// each way through the express path and check it arrived byte for byte. Prints one JSON line.
//   node --expose-gc express-gc.mjs <addon.node> <rounds> <thread: 0|1>
import { createRequire } from 'node:module';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';

const [addonPath, roundsArg, threadArg] = process.argv.slice(2);
const native = createRequire(import.meta.url)(addonPath);
const rounds = Number(roundsArg);
const thread = threadArg === '1';

const TUN_IP = '10.244.1.1';
const REMOTE_POD = '10.244.2.7';
const VNI = 0x4d2;
const VTEP_MAC = Buffer.from('02aabbccdd01', 'hex');
const PEER_MAC = Buffer.from('02aabbccdd02', 'hex');
const ip4 = (s) => Buffer.from(s.split('.').map(Number));

// Only IPv4 may reach the TUN: a router solicitation would be handed to a JS reader this test does not run.
writeFileSync('/proc/sys/net/ipv6/conf/default/disable_ipv6', '1');
native.linkConfigure('lo', { up: true });
const tun = native.tunOpen('vxgc0', { offload: true });
native.linkConfigure(tun.name, { mtu: 1400, ipv4: TUN_IP, prefixLen: 16, up: true });

const bind = native.udpOpen('127.0.0.1', 0, { gso: false, gro: false });
const peer = createSocket('udp4');
const podOut = createSocket('udp4'); // a kernel sender whose packets the route puts into the TUN
const podIn = createSocket('udp4'); // the local pod end inbound packets are delivered to
await Promise.all([
  new Promise((r) => peer.bind(0, '127.0.0.1', r)),
  new Promise((r) => podOut.bind(0, TUN_IP, r)),
  new Promise((r) => podIn.bind(0, TUN_IP, r)),
]);

let handedOver = 0;
const onHandOver = () => {
  handedOver += 1;
};

// Every buffer the addon keeps a pointer into is made here and not kept by anyone in JS.
function openExpress(counters) {
  return native.expressOpen({
    tunQueue: native.tunQueueOpen(tun.fd, tun.vnetHdr === true),
    tunCounters: new Float64Array(native.counterNames.tun.length),
    udpFd: bind.fd,
    sendFds: new Int32Array(0),
    arena: new Uint8Array(64 * 2048),
    slotSize: 2048,
    batch: 64,
    sizes: new Int32Array(64),
    addrs: new Uint32Array(64),
    ports: new Uint16Array(64),
    gsoSizes: new Int32Array(64),
    udpCounters: new Float64Array(native.counterNames.udp.length),
    vni: VNI,
    vtepMac: Uint8Array.from(VTEP_MAC),
    maxInnerSize: 1400,
    readRoom: 1500,
    tunMtu: 1400,
    counters,
    gate: new Int32Array(1),
    thread,
  });
}

function routes(handle) {
  // 10.244.2.0/24 -> peer 0 through the trie's chunks (chunk 0 is the root): 10 -> chunk 1, .244 -> chunk 2, .2 -> peer 0.
  const trie = new Int32Array(256 * 3);
  trie[10] = ~1;
  trie[256 + 244] = ~2;
  trie[512 + 2] = 1;
  const rec = Buffer.alloc(28);
  Buffer.from([0x08, 0, 0, 0, VNI >> 16, (VNI >> 8) & 0xff, VNI & 0xff, 0]).copy(rec, 0);
  PEER_MAC.copy(rec, 8);
  VTEP_MAC.copy(rec, 14);
  rec.writeUInt16BE(0x0800, 20);
  ip4('127.0.0.1').copy(rec, 22);
  rec.writeUInt16BE(peer.address().port, 26);
  // Anti-spoofing as the engine compiles it (compileExpressGuard): every check on, VTEP 10.244.1.0,
  // our subnet 10.244.1.0/24; the peer at 127.0.0.1 owns 10.244.2.0/24.
  const guard = Buffer.alloc(16);
  guard[0] = 7;
  ip4('10.244.1.0').copy(guard, 4);
  ip4('10.244.1.0').copy(guard, 8);
  guard.writeUInt32BE(0xffffff00, 12);
  native.expressRoutes(handle, trie, rec, guard);
}

function ipv4Udp(src, dst, sport, dport, payload) {
  const p = Buffer.alloc(28 + payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 17;
  ip4(src).copy(p, 12);
  ip4(dst).copy(p, 16);
  p.writeUInt16BE(native.checksum(p, 0, 20) ^ 0xffff, 10);
  p.writeUInt16BE(sport, 20);
  p.writeUInt16BE(dport, 22);
  p.writeUInt16BE(8 + payload.length, 24); // UDP checksum 0: none
  payload.copy(p, 28);
  return p;
}

function vxlanIn(inner) {
  const h = Buffer.alloc(22);
  Buffer.from([0x08, 0, 0, 0, VNI >> 16, (VNI >> 8) & 0xff, VNI & 0xff, 0]).copy(h, 0);
  VTEP_MAC.copy(h, 8);
  PEER_MAC.copy(h, 14);
  h.writeUInt16BE(0x0800, 20);
  return Buffer.concat([h, inner]);
}

const counters = new Float64Array(native.counterNames.express.length);
const handle = openExpress(counters);
routes(handle);
const polls = [native.pollStart(tun.fd, onHandOver, handle, 0), native.pollStart(bind.fd, onHandOver, handle, 1)];

const next = (sock) =>
  new Promise((resolve) => {
    const timer = setTimeout(() => {
      sock.off('message', on);
      resolve(undefined);
    }, 500);
    const on = (msg) => {
      clearTimeout(timer);
      resolve(msg);
    };
    sock.once('message', on);
  });

let garbage = [];
let outOk = 0;
let inOk = 0;
const wrong = [];
for (let i = 0; i < rounds; i++) {
  globalThis.gc();
  // Reuse what the collector freed: buffers of the sizes the express path was given, filled with junk.
  garbage = [];
  for (const size of [24, 12, 88, 512, 256, 64 * 2048, 65545 + 64]) garbage.push(new Uint8Array(size).fill(0xa5));
  const outPayload = Buffer.from(`out ${i} `.padEnd(100, 'o'));
  const gotOut = next(peer);
  podOut.send(outPayload, 9999, REMOTE_POD);
  const out = await gotOut;
  const innerOut = out?.subarray(22);
  if (out !== undefined && out.subarray(0, 8).equals(Buffer.from([0x08, 0, 0, 0, VNI >> 16, (VNI >> 8) & 0xff, VNI & 0xff, 0])) && innerOut.length === 128 && innerOut.subarray(28).equals(outPayload) && innerOut.subarray(16, 20).equals(ip4(REMOTE_POD))) outOk += 1;
  else if (wrong.length < 5) wrong.push({ round: i, dir: 'out', got: out?.toString('hex') });

  const inPayload = Buffer.from(`in ${i} `.padEnd(100, 'i'));
  const gotIn = next(podIn);
  peer.send(vxlanIn(ipv4Udp(REMOTE_POD, TUN_IP, 7777, podIn.address().port, inPayload)), bind.port, '127.0.0.1');
  const inn = await gotIn;
  if (inn !== undefined && inn.equals(inPayload)) inOk += 1;
  else if (wrong.length < 5) wrong.push({ round: i, dir: 'in', got: inn?.toString('hex') });
}
for (const p of polls) native.pollStop(p);
native.expressStop(handle);
process.stdout.write(JSON.stringify({ rounds, outOk, inOk, handedOver, wrong, counters: Array.from(counters) }) + '\n');
peer.close();
podOut.close();
podIn.close();
