/**
 * What a TUN queue or a bind contributes to the addon's express path (native/express.cc). Not part of
 * the generic TunDevice and Bind: only the addon's own devices (LinuxTun, NativeBind) have it, and the
 * express controller (src/datapath/engine.ts) asks for it here.
 */
import type { ExpressHandle, ExpressTunSide, ExpressUdpSide } from './addon.js';
import type { TunDevice } from './tun-device.js';
import type { Bind } from './bind.js';

export interface ExpressCapable<Side> {
  /** What expressOpen needs of this device; undefined: it cannot take part now (closed, or not read by the addon). */
  expressSide(): Side | undefined;
  /** From start on, the device's poll offers each wake-up to the express path first. Before start. */
  useExpress(handle: ExpressHandle): void;
}

function capable<Side>(device: object): ExpressCapable<Side> | undefined {
  const d = device as Partial<ExpressCapable<Side>>;
  return typeof d.expressSide === 'function' && typeof d.useExpress === 'function' ? (d as ExpressCapable<Side>) : undefined;
}

/** The TUN queue's express side, if it has one. */
export const expressTunOf = (tun: TunDevice): ExpressCapable<ExpressTunSide> | undefined => capable<ExpressTunSide>(tun);
/** The bind's express side, if it has one. */
export const expressBindOf = (bind: Bind): ExpressCapable<ExpressUdpSide> | undefined => capable<ExpressUdpSide>(bind);
