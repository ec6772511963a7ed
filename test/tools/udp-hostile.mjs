// Sends a seeded stream of hostile VXLAN datagrams: random bytes, and the seed datagrams (hex, one
// per line of <seeds-file>) with bytes changed, cut short or extended. Inner IPv4 packets longer than
// 1400 bytes are cut to 1400 (the node would segment or refuse them: one datagram, one outcome).
//   node udp-hostile.mjs <ip> <port> <seeds-file> <count> <seed>
// Paced (a batch, then a pause) so the receiver's socket buffer does not overflow; prints the number
// of datagrams sent.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';

const [ip, portText, seedsFile, countText, seedText] = process.argv.slice(2);
const seeds = readFileSync(seedsFile, 'utf8').split('\n').filter(Boolean).map((h) => Buffer.from(h, 'hex'));
const count = Number(countText);
let state = Number(seedText) >>> 0 || 1;
const next = () => {
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state;
};
const below = (n) => next() % n;

function datagram() {
  if (below(4) === 0) {
    const b = Buffer.alloc(below(120));
    for (let i = 0; i < b.length; i++) b[i] = below(256);
    return b;
  }
  let b = Buffer.from(seeds[below(seeds.length)]);
  const changes = below(5);
  for (let k = 0; k < changes; k++) b[below(b.length)] = below(4) === 0 ? below(256) : b[below(b.length)] ^ (1 << below(8));
  if (below(5) === 0) b = b.subarray(0, below(b.length + 1));
  if (below(8) === 0) b = Buffer.concat([b, Buffer.alloc(below(32), below(256))]);
  if (b.length >= 26 && b.readUInt16BE(20) === 0x0800 && b.readUInt16BE(24) > 1400) b.writeUInt16BE(1400, 24);
  return b;
}

const sock = dgram.createSocket('udp4');
const send = (b) => new Promise((resolve, reject) => sock.send(b, Number(portText), ip, (err) => (err ? reject(err) : resolve())));
let sent = 0;
while (sent < count) {
  const batch = [];
  for (let k = 0; k < 32 && sent < count; k++, sent++) batch.push(send(datagram()));
  await Promise.all(batch);
  await new Promise((r) => setTimeout(r, 2));
}
sock.close();
process.stdout.write(`${sent}\n`);
