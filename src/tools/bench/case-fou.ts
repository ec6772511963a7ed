/**
 * The `fou` bench case: the kernel's foo-over-UDP, an ipip tunnel whose packets ride in UDP
 * (`encap fou`, received by `ip fou add port 5555 ipproto 4`): raw IPv4 in UDP as flannel's udp
 * backend puts it on the wire, but in the kernel; 28 bytes of overhead.
 */
import type { BenchCase } from './built-case.js';
import { UnsupportedCase } from './built-case.js';
import { release } from 'node:os';
import { CommandError } from '../lab/exec.js';
import { addKernelLink, buildTwoNodeCase, routeThroughDevice } from './two-node-case.js';
import { WIRE } from './verify-wire.js';

/** The FOU receive port (no registered default; flannel's udp backend uses 8285, kept distinct). */
export const FOU_PORT = 5555;

export const FOU_CASE: BenchCase = {
  id: 'fou',
  dataplane: 'kernel FOU',
  title: 'kernel foo-over-UDP (fou)',
  description: `Linux's foo-over-UDP on both nodes: an ipip device with \`encap fou\` to udp ${FOU_PORT}, received by \`ip fou add port ${FOU_PORT} ipproto 4\`; raw IPv4 in UDP (flannel's udp wire shape, in the kernel), pods at the underlay MTU − 28`,
  build: (say, env) =>
    buildTwoNodeCase(say, env, {
      overhead: 28,
      stack: WIRE.ipInUdp(FOU_PORT, 'FOU'),
      async setupNode(node) {
        try {
          await node.ns.execOk(['ip', 'fou', 'add', 'port', String(FOU_PORT), 'ipproto', '4']);
        } catch (err) {
          // No fou generic-netlink family: the kernel was built without CONFIG_NET_FOU.
          if (err instanceof CommandError && /No such file|Error talking to the kernel|not supported/i.test(err.stderr)) {
            throw new UnsupportedCase(`unavailable: this kernel (${release()}) has no foo-over-UDP (CONFIG_NET_FOU)`);
          }
          throw err;
        }
        await addKernelLink(
          node.ns,
          ['fou1', 'type', 'ipip', 'local', node.addr.publicIp, 'remote', node.peer.publicIp, 'encap', 'fou', 'encap-sport', 'auto', 'encap-dport', String(FOU_PORT)],
          'ipip device for foo-over-UDP (CONFIG_NET_IPIP)',
        );
        await routeThroughDevice(node, 'fou1');
        return [];
      },
    }),
};
