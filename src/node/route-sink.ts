/**
 * Where a node's route tables go: the source of routes (static peers, a registry's leases) publishes
 * each new table here once, and every engine that forwards — the main thread's and each worker's —
 * follows it. A follower that joins late gets the current table at once, so no engine ever runs on
 * an older table than the others were given.
 */
import { RouteTable, type Route, type Vtep } from '../packet/routes.js';
import type { RouteFeed, RouteFollower } from '../datapath/workers.js';

export class RouteSink implements RouteFeed {
  private table: RouteTable<Vtep> = RouteTable.empty();
  private readonly followers: RouteFollower[] = [];

  get current(): RouteTable<Vtep> {
    return this.table;
  }

  /** Hands `follower` the current table now and every later one. */
  subscribe(follower: RouteFollower): void {
    this.followers.push(follower);
    follower.setRoutes(this.table);
  }

  /** One table, built once, given to every follower (each swaps it in atomically). */
  publish(routes: readonly Route<Vtep>[]): RouteTable<Vtep> {
    this.table = new RouteTable([...routes]);
    for (const f of this.followers) f.setRoutes(this.table);
    return this.table;
  }
}
