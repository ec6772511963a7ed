// A vxtun node on the kube subnet manager, composed directly from the built modules (dist/) until
// `vxtun up --kube-subnet-mgr` exists: run inside a node namespace, it reaches the stand-in API
// server through a unix socket (a namespace has its own loopback) bridged to 127.0.0.1 here, reads
// back its VtepMAC and node-public-ip, publishes its lease, opens vxtun0 and the engine, follows the
// peers, sets NetworkUnavailable=False, and prints one JSON line when ready. SIGTERM stops it.
// Argument: JSON {apiSocket, netConfPath, nodeName, publicIp, vtepMac}.
import net from 'node:net';
import pino from 'pino';
import { KubeRegistry } from '../../dist/src/control/registry/kube.js';
import { LeaseManager } from '../../dist/src/control/lease-manager.js';
import { parseNetworkConfig, encodeLeaseValue } from '../../dist/src/control/flannel.js';
import { VXLAN_OVERHEAD_V4 } from '../../dist/src/control/config.js';
import { findUnderlay } from '../../dist/src/control/host.js';
import { Engine } from '../../dist/src/datapath/engine.js';
import { openDatapath } from '../../dist/src/datapath/select.js';
import { openLinuxTun, addRoute } from '../../dist/src/io/tun-linux.js';
import { RouteTable } from '../../dist/src/packet/routes.js';
import { macFromString, macToString } from '../../dist/src/packet/wire/ethernet.js';
import { ipv4ToString } from '../../dist/src/packet/wire/ipv4.js';
import { cidrToString } from '../../dist/src/packet/cidr.js';

const opts = JSON.parse(process.argv[2]);
const log = pino({ level: 'info' }, pino.destination(2));

const bridge = net.createServer((client) => {
  const api = net.connect(opts.apiSocket);
  client.pipe(api).pipe(client);
  client.on('error', () => api.destroy());
  api.on('error', () => client.destroy());
});
await new Promise((resolve) => bridge.listen(0, '127.0.0.1', resolve));

const registry = await KubeRegistry.open({ apiUrl: `http://127.0.0.1:${bridge.address().port}`, netConfPath: opts.netConfPath, env: { NODE_NAME: opts.nodeName } }, log);
const stored = await registry.storedAttrs();
const publicIp = stored.publicIp ?? opts.publicIp;
const vtepMac = macFromString(stored.vtepMac ?? opts.vtepMac);
const network = parseNetworkConfig(await registry.getNetworkConfig(), opts.netConfPath);
const { vni, port } = network.backend;
const manager = new LeaseManager({ registry, network, publicIp, leaseValue: encodeLeaseValue(publicIp, { type: 'vxlan', vni, vtepMac }), log });
const subnet = await manager.acquire();

const underlay = findUnderlay(publicIp);
const mtu = underlay.mtu - VXLAN_OVERHEAD_V4;
const tun = openLinuxTun({ name: 'vxtun0', mtu, ipv4: ipv4ToString(subnet.addr), prefixLen: 32 });
addRoute(ipv4ToString(network.network.addr), network.network.prefixLen, tun.name);
const { bind } = await openDatapath({ kind: 'ts', gso: false, address: publicIp, port });
const engine = new Engine(tun, bind, { vni, vtepMac, vtepIp: subnet.addr, port, maxInnerSize: mtu, tunMtu: mtu });
engine.setRoutes(new RouteTable(manager.routes));
manager.on('routes', (routes) => {
  engine.setRoutes(new RouteTable(routes));
  process.stdout.write(`${JSON.stringify({ routes: routes.map((r) => cidrToString(r.prefix)) })}\n`);
});
manager.start();
engine.start();
await registry.completeLease();
process.stdout.write(`${JSON.stringify({ ready: true, subnet: cidrToString(subnet), vtepMac: macToString(vtepMac), publicIp })}\n`);

process.once('SIGTERM', async () => {
  await manager.stop();
  engine.stop();
  bind.close();
  tun.close();
  await registry.close();
  bridge.close();
  process.exit(0);
});
