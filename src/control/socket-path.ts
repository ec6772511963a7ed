import { readlinkSync } from 'node:fs';

/**
 * The default control socket of `device`: one directory per network namespace (named by the
 * namespace's inode, as /proc/self/ns/net shows it), so nodes in two namespaces of one host never
 * collide, while the file keeps its root-only mode (an abstract socket would have none: anyone in
 * the namespace could trace pod traffic). `vxtun status` and `trace` in the same namespace find it.
 */
export function defaultControlSocket(device: string): string {
  let ns = 'netns-unknown';
  try {
    const inode = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/net'))?.[1];
    if (inode) ns = `netns-${inode}`;
  } catch {
    // no /proc: one directory for the host
  }
  return `/run/vxtun/${ns}/${device}.sock`;
}
