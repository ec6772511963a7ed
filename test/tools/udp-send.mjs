// Sends each hex argument as one UDP datagram: node udp-send.mjs <ip> <port> <hex>...
// Used by tests to play a misbehaving host on the underlay (inside a test namespace).
import dgram from 'node:dgram';

const [ip, portText, ...payloads] = process.argv.slice(2);
const sock = dgram.createSocket('udp4');
let pending = payloads.length;
for (const hex of payloads) {
  sock.send(Buffer.from(hex, 'hex'), Number(portText), ip, (err) => {
    if (err) {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = 1;
    }
    if (--pending === 0) sock.close();
  });
}
if (pending === 0) sock.close();
