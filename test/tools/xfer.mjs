// TCP transfer with a checksum at both ends, run inside a pod namespace:
//   node xfer.mjs sink <ip> <port>            -> prints {"bytes":N,"sha256":"..."} when the peer closes
//   node xfer.mjs source <ip> <port> <bytes>  -> sends pseudo-random bytes, prints the same line
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

const [mode, ip, portText, bytesText] = process.argv.slice(2);
const port = Number(portText);
if (mode === 'sink') {
  const server = net.createServer((conn) => {
    const hash = createHash('sha256');
    let bytes = 0;
    conn.on('data', (d) => {
      hash.update(d);
      bytes += d.length;
    });
    conn.on('end', () => {
      process.stdout.write(`${JSON.stringify({ bytes, sha256: hash.digest('hex') })}\n`);
      conn.end();
      server.close();
    });
  });
  server.listen(port, ip, () => process.stdout.write('listening\n'));
} else if (mode === 'source') {
  const total = Number(bytesText);
  const hash = createHash('sha256');
  const chunk = randomBytes(1 << 20);
  let sent = 0;
  const sock = net.connect(port, ip, () => {
    const pump = () => {
      while (sent < total) {
        const n = Math.min(chunk.length, total - sent);
        const piece = chunk.subarray(0, n);
        chunk.writeUInt32BE(sent >>> 0, 0); // vary the stream so repeats would not hide reordering
        hash.update(piece);
        sent += n;
        if (!sock.write(Buffer.from(piece))) return void sock.once('drain', pump);
      }
      sock.end();
    };
    pump();
  });
  sock.on('close', () => process.stdout.write(`${JSON.stringify({ bytes: sent, sha256: hash.digest('hex') })}\n`));
  sock.on('error', (e) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write('usage: xfer.mjs sink|source ip port [bytes]\n');
  process.exit(2);
}
