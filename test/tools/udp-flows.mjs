// Sends `count` UDP flows, each from its own socket (its own ephemeral source port), `each` datagrams
// per flow: node udp-flows.mjs <ip> <port> <count> <each>. Datagram payload: flow index, sequence.
// Used by tests to put many inner flows on the wire (inside a test namespace).
import dgram from 'node:dgram';

const [ip, portText, countText, eachText] = process.argv.slice(2);
const count = Number(countText);
const each = Number(eachText ?? 1);
const socks = [];
for (let f = 0; f < count; f++) {
  const sock = dgram.createSocket('udp4');
  await new Promise((r) => sock.bind(0, r));
  socks.push(sock);
}
for (let s = 0; s < each; s++) {
  for (let f = 0; f < count; f++) {
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(f, 0);
    payload.writeUInt32BE(s, 4);
    await new Promise((resolve, reject) => socks[f].send(payload, Number(portText), ip, (err) => (err ? reject(err) : resolve())));
  }
}
for (const sock of socks) sock.close();
