/**
 * The route sink (src/node/route-sink.ts) gives the main engine and the workers one and the same
 * table: the main engine swaps in the very table published, a worker the same routes after they
 * crossed the thread boundary (routesMessage / tableFromMessage, what WorkerPool.setRoutes posts
 * and a worker swaps in) — including a worker that subscribes after the first table was published,
 * as the pool does once its threads run.
 */
import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/datapath/engine.js';
import { routesMessage, tableFromMessage, type RouteFollower } from '../../src/datapath/workers.js';
import { RouteSink } from '../../src/node/route-sink.js';
import { RouteTable, type Route, type Vtep } from '../../src/packet/routes.js';
import { parseCidr, type Cidr } from '../../src/packet/cidr.js';
import { ipv4FromString } from '../../src/packet/wire/ipv4.js';
import { macFromString } from '../../src/packet/wire/ethernet.js';
import { createFakeTun } from '../../src/io/tun-fake.js';
import { FakeNetwork } from '../../src/io/bind-fake.js';

function route(prefix: string, address: string, mac: string, vni = 1): Route<Vtep> {
  return { prefix: parseCidr(prefix) as Cidr, target: { endpoint: { address, port: 8472 }, vtepMac: macFromString(mac), vni } };
}

/** A worker as the pool feeds it: the table crosses as a structured-cloned message and is rebuilt there. */
class WorkerSide implements RouteFollower {
  table: RouteTable<Vtep> | undefined;
  setRoutes(table: RouteTable<Vtep>): void {
    this.table = tableFromMessage(structuredClone(routesMessage(table)));
  }
}

const probes = ['10.244.2.7', '10.244.3.1', '10.244.3.200', '10.244.9.9', '10.245.0.1'].map(ipv4FromString);

function sameTable(a: RouteTable<Vtep>, b: RouteTable<Vtep>): void {
  expect(b.describe()).toEqual(a.describe());
  for (const p of probes) {
    const x = a.lookup4(p);
    const y = b.lookup4(p);
    expect(y === undefined ? undefined : { endpoint: y.endpoint, vtepMac: [...y.vtepMac], vni: y.vni }).toEqual(x === undefined ? undefined : { endpoint: x.endpoint, vtepMac: [...x.vtepMac], vni: x.vni });
  }
}

describe('route sink', () => {
  it('feeds the main engine and the workers the same table, a late worker included', () => {
    const net = new FakeNetwork();
    const main = new Engine(createFakeTun('sink0').device, net.bind('198.18.0.1', 8472), { vni: 1, vtepMac: macFromString('0a:58:0a:f4:01:00'), vtepIp: ipv4FromString('10.244.1.0'), localSubnets: [parseCidr('10.244.1.0/24') as Cidr], port: 8472, maxInnerSize: 1450, tunMtu: 1450 });
    const sink = new RouteSink();
    sink.subscribe(main);
    const first = sink.publish([route('10.244.2.0/24', '198.18.0.2', '0a:58:0a:f4:02:00'), route('10.244.3.0/24', '198.18.0.3', '0a:58:0a:f4:03:00')]);
    expect(main.routeTable).toBe(first);

    // The pool subscribes once its threads run, after the first table: it gets that table at once.
    const workers = [new WorkerSide(), new WorkerSide()];
    for (const w of workers) sink.subscribe(w);
    for (const w of workers) sameTable(main.routeTable, w.table!);
    expect(main.routeTable.lookup4(ipv4FromString('10.244.3.1'))?.endpoint.address).toBe('198.18.0.3');

    // A reload or a registry watch: one publish reaches every engine.
    const second = sink.publish([route('10.244.3.0/25', '198.18.0.33', '0a:58:0a:f4:21:00', 7), route('10.244.9.0/24', '198.18.0.9', '0a:58:0a:f4:09:00')]);
    expect(main.routeTable).toBe(second);
    expect(sink.current).toBe(second);
    for (const w of workers) sameTable(main.routeTable, w.table!);
    expect(workers[1]!.table!.lookup4(ipv4FromString('10.244.2.7'))).toBeUndefined();
    expect(workers[1]!.table!.lookup4(ipv4FromString('10.244.3.1'))?.endpoint.address).toBe('198.18.0.33');
    expect(workers[1]!.table!.lookup4(ipv4FromString('10.244.3.200'))).toBeUndefined();
  });
});
