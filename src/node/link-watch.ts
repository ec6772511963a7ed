/**
 * Watches the node's TUN device and its pod-network route twice a second, so that neither fault is
 * silent:
 *   the device deleted (`ip link del`)  -> `lost` is called: the node stops, removes what it made and
 *                                          exits 1, for its supervisor to restart it (docs/operations.md);
 *   the device set down and up again    -> the kernel dropped the route with the link; it is put back.
 * The probe is the route itself: adding it answers EEXIST while all is well (no change, no netlink
 * event), ENETDOWN while the link is down, ENODEV once the device is gone — one ioctl, no parsing.
 */
import type { Logger } from 'pino';
import { addRoute } from '../io/tun-linux.js';

export interface LinkWatch {
  stop(): void;
}

export interface LinkWatchOptions {
  device: string;
  /** The pod-network route through the device. */
  route: { dst: string; prefixLen: number };
  log: Logger;
  /** The device is gone: the node cannot go on. */
  lost: (err: Error) => void;
  intervalMs?: number;
  /** The probe (tests inject one). */
  add?: (dst: string, prefixLen: number, dev: string) => void;
}

export function watchLink(o: LinkWatchOptions): LinkWatch {
  const add = o.add ?? addRoute;
  const where = `${o.route.dst}/${o.route.prefixLen} dev ${o.device}`;
  let down = false;
  let failing = '';
  const check = (): void => {
    try {
      add(o.route.dst, o.route.prefixLen, o.device);
      down = false;
      failing = '';
      o.log.warn({ route: where }, 'pod-network route was gone (device set down and up?): restored');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        down = false;
        failing = '';
      } else if (code === 'ENETDOWN') {
        if (!down) o.log.warn({ device: o.device }, 'TUN device is down: no pod traffic until it is up again (the route is restored then)');
        down = true;
      } else if (code === 'ENODEV') {
        clearInterval(timer);
        o.log.error({ device: o.device }, 'TUN device deleted under the node: stopping (exit 1, for a supervisor to restart it)');
        o.lost(new Error(`TUN device ${o.device} was deleted`));
      } else if (failing !== (err as Error).message) {
        failing = (err as Error).message;
        o.log.warn({ route: where, err: failing }, 'cannot check the pod-network route');
      }
    }
  };
  const timer = setInterval(check, o.intervalMs ?? 500);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
