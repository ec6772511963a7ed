/** Test engines on the fakes, stopped and closed after each test (engine.test.ts, verdicts.test.ts). */
import type { Engine } from '../../src/datapath/engine.js';
import type { FakeTun } from '../../src/io/tun-fake.js';
import type { FakeBind } from '../../src/io/bind-fake.js';

export interface RunningEngine {
  tun: FakeTun;
  bind: FakeBind;
  engine: Engine;
}

/** Stops every engine in `nodes` and closes its TUN and socket; empties the list. */
export async function stopEngines(nodes: RunningEngine[]): Promise<void> {
  for (const n of nodes.splice(0)) {
    n.engine.stop();
    n.tun.device.close();
    await n.bind.close();
  }
}
