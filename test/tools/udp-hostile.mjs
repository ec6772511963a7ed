// Sends each line of <file> (hex) as one UDP datagram, paced (a batch, then a pause) so that a
// receiver's socket buffer does not overflow; prints the number sent. Tests use it to play a
// hostile host on the underlay with a stream too long for udp-send.mjs's arguments.
//   node udp-hostile.mjs <ip> <port> <file>
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';

const [ip, portText, file] = process.argv.slice(2);
const datagrams = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((h) => Buffer.from(h === '-' ? '' : h, 'hex'));
const sock = dgram.createSocket('udp4');
const send = (b) => new Promise((resolve, reject) => sock.send(b, Number(portText), ip, (err) => (err ? reject(err) : resolve())));
let sent = 0;
while (sent < datagrams.length) {
  const batch = datagrams.slice(sent, sent + 32);
  await Promise.all(batch.map(send));
  sent += batch.length;
  await new Promise((r) => setTimeout(r, 2));
}
sock.close();
process.stdout.write(`${sent}\n`);
