/**
 * The naive userspace VXLAN dataplane: the baseline of issue 3's "pure-TS path ≥ 5 × the naive
 * `fs.read` + `dgram.send` design". Outbound, one blocking `fs.read` per packet (a thread-pool hop
 * each, one read in flight), Ethernet + VXLAN written in front of it with src/wire's emitters, one
 * `dgram.send` per datagram. Inbound, dgram 'message' per datagram, checked and unwrapped, one
 * `fs.write` each. No batching, no poll handle, no offloads: what one writes first in Node.
 *
 * It is a real dataplane, not a model: it reads the same config file as a static `vxtun up` node
 * (publicIp, network, subnet, device, backend, peers, controlSocket), programs the host the same
 * way (TUN with `<subnet>.0/32`, MTU underlay − 50, route to the network), speaks the same wire
 * format (so a kernel VXLAN peer talks to it), completes CHECKSUM_PARTIAL checksums as vxtun does,
 * and counts every drop by reason. Its control socket answers {"cmd":"info"} and {"cmd":"counters"}.
 *
 *   node dist/src/tools/bench/naive-dataplane.js --config FILE [--log-level info]
 */
import dgram from 'node:dgram';
import { read, write } from 'node:fs';
import { execFileSync } from 'node:child_process';
import pino from 'pino';
import { loadConfig, ConfigError, type NodeConfig, type PeerConfig } from '../../control/config.js';
import { preflight, HostError } from '../../control/host.js';
import { ControlServer } from '../../control/socket.js';
import { ipv4Mask } from '../../packet/cidr.js';
import { segmentTcp } from '../../packet/gso.js';
import { openLinuxTun, addRoute } from '../../io/tun-linux.js';
import { requireNative } from '../../io/addon.js';
import { emitEthernet, EthernetFrame, EtherType, ETHERNET_HEADER_LEN } from '../../packet/wire/ethernet.js';
import { emitVxlan, VxlanHeader, VXLAN_HEADER_LEN } from '../../packet/wire/vxlan.js';
import { isWireError } from '../../packet/wire/error.js';
import { repairPartialL4Checksum } from '../../packet/wire/l4checksum.js';
import { Ipv4Packet, Ipv4Field, IPV4_MIN_HEADER_LEN, ipv4ToString } from '../../packet/wire/ipv4.js';

/** VXLAN header, then the inner Ethernet header, then the IP packet the TUN gave us. */
const INNER_ETH = VXLAN_HEADER_LEN;
const INNER_IP = VXLAN_HEADER_LEN + ETHERNET_HEADER_LEN;
/** fs.write calls queued in the thread pool at most; beyond that an arriving packet is dropped (counted), not queued without bound. */
const MAX_PENDING_WRITES = 1024;

export interface NaiveCounters {
  tunReads: number;
  tunReadErrors: number;
  sent: number;
  sendErrors: number;
  received: number;
  tunWrites: number;
  tunWriteErrors: number;
  checksumsCompleted: number;
  /** Kernel peers' TCP super-packets cut at the TUN MTU (as vxtun does), and the pieces written. */
  superPacketsSegmented: number;
  /** Drops by reason, outbound (from the TUN) and inbound (from the wire). */
  drops: {
    notIpv4: number;
    noRoute: number;
    truncated: number;
    badFlags: number;
    wrongVni: number;
    wrongMac: number;
    notIp: number;
    tunBacklog: number;
  };
}

function newCounters(): NaiveCounters {
  return {
    tunReads: 0,
    tunReadErrors: 0,
    sent: 0,
    sendErrors: 0,
    received: 0,
    tunWrites: 0,
    tunWriteErrors: 0,
    checksumsCompleted: 0,
    superPacketsSegmented: 0,
    drops: { notIpv4: 0, noRoute: 0, truncated: 0, badFlags: 0, wrongVni: 0, wrongMac: 0, notIp: 0, tunBacklog: 0 },
  };
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** The peer owning `dst`: a linear scan, as a first design would do it. */
function peerFor(peers: readonly PeerConfig[], dst: number): PeerConfig | undefined {
  for (const p of peers) if ((dst & ipv4Mask(p.subnet.prefixLen)) >>> 0 === p.subnet.addr) return p;
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const configPath = arg(argv, 'config');
  if (configPath === undefined) {
    process.stderr.write('naive-dataplane: --config FILE is required\n');
    return 2;
  }
  let cfg: NodeConfig;
  let mtu: number;
  try {
    cfg = loadConfig(configPath);
    mtu = preflight(cfg).deviceMtu;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof HostError) {
      process.stderr.write(`naive-dataplane: ${err.message}\n`);
      return err instanceof HostError ? err.exitCode : 2;
    }
    throw err;
  }
  const log = pino({ level: arg(argv, 'log-level') ?? 'info', base: { device: cfg.device.name, datapath: 'naive' } });
  const counters = newCounters();
  const drops = counters.drops;

  const tun = openLinuxTun({ name: cfg.device.name, mtu, ipv4: ipv4ToString(cfg.subnet.addr), prefixLen: 32 });
  const fd = tun.fd;
  // fs.read on a non-blocking descriptor would return EAGAIN at once: the naive design blocks a pool thread instead.
  requireNative().setBlocking(fd, true);
  addRoute(ipv4ToString(cfg.network.addr), cfg.network.prefixLen, tun.name);

  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: cfg.publicIp, port: cfg.backend.port, exclusive: true }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  // The same socket buffers as vxtun's dgram path, so the comparison is of designs, not of buffer sizes.
  try {
    socket.setRecvBufferSize(4 * 1024 * 1024);
    socket.setSendBufferSize(4 * 1024 * 1024);
  } catch {
    // capped by net.core.*mem_max: the defaults still carry traffic
  }
  socket.on('error', () => counters.sendErrors++);

  const ownMac = cfg.backend.vtepMac;
  const onSent = (err: Error | null): void => {
    if (err) counters.sendErrors++;
  };

  let stopping = false;
  let pendingWrites = 0;

  /** One packet from the TUN: wrap it and send it, then read the next one. */
  const readNext = (): void => {
    const buf = Buffer.allocUnsafe(INNER_IP + mtu);
    read(fd, buf, INNER_IP, mtu, null, (err, n) => {
      if (stopping) return;
      if (err) {
        counters.tunReadErrors++;
        log.warn({ err: err.message }, 'TUN read failed');
        setTimeout(readNext, 100);
        return;
      }
      counters.tunReads++;
      forward(buf, n);
      readNext();
    });
  };

  const forward = (buf: Buffer, n: number): void => {
    if (n < IPV4_MIN_HEADER_LEN) return void drops.truncated++;
    if (buf[INNER_IP]! >> 4 !== 4) return void drops.notIpv4++; // the static config's network is IPv4
    const peer = peerFor(cfg.peers, buf.readUInt32BE(INNER_IP + Ipv4Field.DST));
    if (!peer) return void drops.noRoute++;
    emitVxlan({ vni: peer.vni }, buf, 0);
    emitEthernet({ dst: peer.vtepMac, src: ownMac, etherType: EtherType.IPV4 }, buf, INNER_ETH);
    socket.send(buf, 0, INNER_IP + n, peer.port, peer.publicIp, onSent);
    counters.sent++;
  };

  const onWritten = (err: Error | null): void => {
    pendingWrites--;
    if (err) counters.tunWriteErrors++;
    else counters.tunWrites++;
  };

  /** One datagram from the wire: check, unwrap, write the inner packet to the TUN. */
  socket.on('message', (msg) => {
    counters.received++;
    const vx = VxlanHeader.check(msg);
    if (isWireError(vx)) return void drops.truncated++;
    if (vx.validate() !== undefined) return void drops.badFlags++;
    if (vx.vni !== cfg.backend.vni) return void drops.wrongVni++;
    const eth = EthernetFrame.check(msg, vx.payloadOffset);
    if (isWireError(eth)) return void drops.truncated++;
    if (!eth.dstIs(ownMac)) return void drops.wrongMac++;
    if (eth.etherType !== EtherType.IPV4) return void drops.notIp++; // ARP, and IPv6 the IPv4 network has no route for
    const ip = Ipv4Packet.check(msg, eth.payloadOffset, eth.payloadLength);
    if (isWireError(ip)) return void drops.truncated++;
    const ipLength = ip.totalLength; // Ethernet padding past it is not part of the packet
    if (ipLength > mtu) {
      // A kernel peer over veth sends whole TCP super-packets (GSO); the TUN's side would drop them.
      const pieces = segmentTcp(msg, eth.payloadOffset, ipLength, mtu, 0);
      if (pieces !== undefined) {
        counters.superPacketsSegmented++;
        for (const piece of pieces) writeTun(piece, 0, piece.length);
        return;
      }
    }
    // A kernel VXLAN peer over veth leaves TCP/UDP checksums unfinished; our TCP would drop them.
    if (repairPartialL4Checksum(msg, eth.payloadOffset, ipLength) === 'partial') counters.checksumsCompleted++;
    writeTun(msg, eth.payloadOffset, ipLength);
  });

  function writeTun(buf: Buffer, offset: number, length: number): void {
    if (pendingWrites >= MAX_PENDING_WRITES) return void drops.tunBacklog++;
    pendingWrites++;
    write(fd, buf, offset, length, null, onWritten);
  }

  const control = await ControlServer.listen(cfg.controlSocket, (req) => {
    if (req.cmd === 'counters') return counters;
    if (req.cmd === 'info') return { datapath: 'naive', device: tun.name, mtu, publicIp: cfg.publicIp, port: cfg.backend.port, vni: cfg.backend.vni, peers: cfg.peers.length };
    return { error: `unknown command ${JSON.stringify(req.cmd)} (naive dataplane: info, counters)` };
  });

  readNext();
  log.info({ mtu, publicIp: cfg.publicIp, port: cfg.backend.port, peers: cfg.peers.length }, 'naive dataplane up');

  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal, counters }, 'naive dataplane stopping');
      socket.close();
      void control.close().finally(() => {
        // A pool thread sits in read() on the TUN and would keep the process from exiting: deleting
        // the device ends that read (the kernel shuts the queue down), and takes the route with it.
        try {
          execFileSync('ip', ['link', 'del', 'dev', tun.name], { stdio: 'ignore' });
        } catch {
          // already gone
        }
        tun.close();
        resolve(0);
        // Should the read still hang (no iproute2?), the device goes with the process anyway: do not linger.
        setTimeout(() => {
          log.error('TUN read did not end after the device was deleted: exiting by SIGKILL');
          process.kill(process.pid, 'SIGKILL');
        }, 3000).unref();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

process.exitCode = await main(process.argv.slice(2)).catch((err: unknown) => {
  // Set-up failed (TUN, route, socket): one line; the device was not persistent and is gone with us.
  process.stderr.write(`naive-dataplane: ${(err as Error).message.split('\n')[0]}\n`);
  return 1;
});
