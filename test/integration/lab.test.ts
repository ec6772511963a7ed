/**
 * Issue 2: the README's first command ends in `vxtun lab`: a vxtun node and a kernel-VXLAN node
 * in namespaces it creates, a ping across printed (one traced along its whole path, the kernel's
 * hops included), everything torn down after.
 */
import { describe, expect, it } from 'vitest';
import { run } from '../../src/tools/lab/exec.js';
import { cliPath } from '../../src/tools/lab/cluster.js';
import { requirePrerequisites } from '../support/integration.js';

describe('vxtun lab', () => {
  it('pings across a vxtun node and a kernel VXLAN node, then leaves nothing behind', async () => {
    requirePrerequisites();
    const r = await run([process.execPath, cliPath, 'lab'], { timeoutMs: 90_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const prefix = /vxtun lab (vxt-[a-z0-9]+):/.exec(r.stdout)?.[1];
    expect(prefix).toBeDefined();
    expect(r.stdout).toContain('vxtun on TUN vxtun0');
    expect(r.stdout).toContain('kernel VXLAN flannel.1');
    // Both directions, three replies each.
    expect(r.stdout.match(/3 packets transmitted, 3 received, 0% packet loss/g)).toHaveLength(2);
    // One more ping traced along its whole path: the kernel's hops among vxtun's points, both ways.
    expect(r.stdout.match(/whole path in time order/g)).toHaveLength(2);
    expect(r.stdout).toMatch(/kernel {2}node 198\.18\.0\.1 {2}vxtun0 out +84 B/);
    expect(r.stdout).toMatch(/vxtun {3}node 198\.18\.0\.1 {2}udp-send +106 B/);
    expect(r.stdout).toMatch(/kernel {2}node 198\.18\.0\.2 {2}flannel\.1 in +84 B/);
    expect(r.stdout).toMatch(/kernel {2}node 198\.18\.0\.2 {2}pod eth0 in +84 B/);
    expect(r.stdout).toMatch(/kernel {2}node 198\.18\.0\.1 {2}pod eth0 in +84 B/);
    expect(r.stdout).toContain('lab torn down: ping crossed vxtun <-> kernel VXLAN both ways');
    const ns = await run(['ip', 'netns', 'list']);
    expect(ns.stdout).not.toContain(prefix!);
    const procs = await run(['pgrep', '-f', `${cliPath} up`]);
    expect(procs.stdout.trim()).toBe('');
  });
});
