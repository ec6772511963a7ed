/** Address guards: the lab refuses to configure anything outside its ranges (198.18.0.0/15 underlay, 10.244.0.0/16 and ULA pods). */


export function parseV4(ip: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) throw new Error(`not an IPv4 address: ${ip}`);
  const o = m.slice(1).map(Number);
  if (o.some((x) => x > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
}

export function formatV4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function splitCidr(cidr: string, defaultLen?: number): { ip: string; len: number } {
  const [ip, len] = cidr.split('/');
  if (ip === undefined || (len === undefined && defaultLen === undefined)) throw new Error(`not a CIDR: ${cidr}`);
  const n = len === undefined ? defaultLen! : Number(len);
  if (!Number.isInteger(n)) throw new Error(`not a CIDR: ${cidr}`);
  return { ip, len: n };
}

export function inV4(ip: string, net: string, len: number): boolean {
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return ((parseV4(ip) & mask) >>> 0) === ((parseV4(net) & mask) >>> 0);
}

export function assertUnderlay(ip: string): void {
  if (!inV4(ip, '198.18.0.0', 15)) throw new Error(`underlay address ${ip} is outside 198.18.0.0/15`);
}

export function assertUnderlay6(ip: string): void {
  if (!/^2001:0?db8:/i.test(ip)) throw new Error(`IPv6 underlay address ${ip} is outside 2001:db8::/32`);
}

export function assertPodV4(ip: string): void {
  if (!inV4(ip, '10.244.0.0', 16)) throw new Error(`pod address ${ip} is outside 10.244.0.0/16`);
}

export function assertPodV6(ip: string): void {
  if (!/^f[cd][0-9a-f]{0,2}:/i.test(ip)) throw new Error(`IPv6 pod address ${ip} is not a ULA (fc00::/7)`);
}

/** `10.244.2.0/24` -> `10.244.2.0` (the network address, which flannel puts on flannel.<VNI>). */
export function networkAddress(cidr: string): string {
  const { ip, len } = splitCidr(cidr);
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return formatV4((parseV4(ip) & mask) >>> 0);
}

export function assertMac(mac: string): void {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new Error(`not a MAC address: ${mac}`);
}
