/**
 * Finds English left in Chinese output (issue 19: `--lang zh` throughout). Names stay as they are in
 * the Chinese flannel/CNI literature (docs/terminology.md) — protocols, devices, tools — and so do
 * identifiers (counter names such as wrong-vni, addresses, flags, file keys): anything with a digit,
 * dot, hyphen, colon, underscore, slash, = or a backtick is an identifier, not a word.
 */
export const KEPT_IN_ENGLISH = new Set([
  // protocols and their fields, as the literature writes them
  'IP', 'ICMP', 'UDP', 'TCP', 'ARP', 'VXLAN', 'VNI', 'VTEP', 'MAC', 'MTU', 'TTL', 'DF', 'MF', 'RFC', 'DSCP', 'ECN', 'FDB', 'CNI', 'TUN', 'veth', 'GSO', 'GRO',
  'id', 'seq', 'ttl', 'vni', 'ms', 'Pod', 'SYN', 'ACK', 'FIN', 'RST', 'PSH', 'URG',
  // the tools and programs by name
  'vxtun', 'flannel', 'flanneld', 'Kubernetes', 'etcd', 'Wireshark', 'tshark', 'pcapng', 'bridge', 'ping',
]);

export function untranslatedWords(text: string): string[] {
  const found: string[] = [];
  for (const token of text.replace(/`[^`]*`/g, ' ').split(/[\s，。、；：（）“”‘’—·→←↓↑|()[\]{}<>,;"'!?…━]+/u)) {
    if (token === '' || /[0-9.\-:_/=@`+*#]/.test(token)) continue;
    for (const word of token.match(/[A-Za-z]{2,}/g) ?? []) if (!KEPT_IN_ENGLISH.has(word)) found.push(word);
  }
  return found;
}

/** The lines a person reads: commands (`$ …`) and what they printed (indented under them) left out. */
export function narrativeLines(output: string): string[] {
  const out: string[] = [];
  let inCommandOutput = false;
  for (const line of output.split('\n')) {
    if (/^\s*\$ /.test(line)) {
      inCommandOutput = true;
      continue;
    }
    if (inCommandOutput && /^ {4}/.test(line)) continue;
    inCommandOutput = false;
    out.push(line);
  }
  return out;
}
