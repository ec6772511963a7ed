// One UDP flow of runs of equal-sized datagrams, and its receiver; both print a JSON line with the
// sha256 of the datagrams in order (each one's length, then its payload: where one ends counts too),
// so a test compares what arrived with what left.
//   node udp-run.mjs recv <bindIp> <port> <count> <idleMs>
//       -> {"received": n, "sha256": "..."} once `count` arrived or nothing came for idleMs
//   node udp-run.mjs send <srcIp> <dstIp> <port> <runs> <runLength> <size> [gso]
//       runs of `runLength` datagrams: runLength - 1 of `size` bytes, then one 100 bytes shorter (a run
//       may end short); a short pause after each run, so no socket buffer on the way overflows.
//       Plain: one connected dgram socket, one send per datagram (consecutive IPv4 ids). gso: each run
//       as one UDP_SEGMENT message through the vxtun addon's socket (needs `npm run build`).
//       -> {"sent": n, "sha256": "..."}
// Used by tests inside their namespaces.
import dgram from 'node:dgram';
import { createHash } from 'node:crypto';

const [mode, ...args] = process.argv.slice(2);

/** Datagram k of the flow: its index, then bytes that differ from datagram to datagram. */
function payload(k, size) {
  const b = Buffer.alloc(size);
  b.writeUInt32BE(k, 0);
  for (let i = 4; i < size; i++) b[i] = (k * 131 + i * 7) & 0xff;
  return b;
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

function hashDatagram(hash, p) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(p.length, 0);
  hash.update(len);
  hash.update(p);
}

if (mode === 'recv') {
  const [ip, portText, countText, idleText] = args;
  const want = Number(countText);
  const hash = createHash('sha256');
  let received = 0;
  let timer;
  const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 * 1024 * 1024 });
  const done = () => {
    clearTimeout(timer);
    sock.close();
    process.stdout.write(`${JSON.stringify({ received, sha256: hash.digest('hex') })}\n`);
  };
  const idle = () => {
    clearTimeout(timer);
    timer = setTimeout(done, Number(idleText));
  };
  sock.on('message', (m) => {
    hashDatagram(hash, m);
    if (++received === want) done();
    else idle();
  });
  sock.bind(Number(portText), ip, () => {
    process.stdout.write('listening\n');
    idle();
  });
} else if (mode === 'send') {
  const [srcIp, dstIp, portText, runsText, runLengthText, sizeText, how] = args;
  const [runs, runLength, size, port] = [Number(runsText), Number(runLengthText), Number(sizeText), Number(portText)];
  const hash = createHash('sha256');
  let k = 0;
  const nextRun = () => {
    const run = [];
    for (let j = 0; j < runLength; j++) run.push(payload(k++, j === runLength - 1 ? size - 100 : size));
    for (const p of run) hashDatagram(hash, p);
    return run;
  };
  if (how === 'gso') {
    const { NativeBind } = await import('../../dist/src/io/bind-native.js');
    const bind = NativeBind.open(srcIp, 0, { gso: true, gro: false });
    if (!bind.features.gso) throw new Error('UDP GSO not available');
    for (let r = 0; r < runs; r++) {
      const run = nextRun();
      const sent = bind.send(run, run.map((p) => p.length), 0, run.length, { address: dstIp, port });
      if (sent !== run.length) throw new Error(`run ${r}: ${sent} of ${run.length} sent`);
      await pause(2);
    }
    await bind.close();
  } else {
    const sock = dgram.createSocket('udp4');
    await new Promise((r) => sock.bind(0, srcIp, r));
    await new Promise((r) => sock.connect(port, dstIp, r));
    for (let r = 0; r < runs; r++) {
      const run = nextRun();
      await Promise.all(run.map((p) => new Promise((resolve, reject) => sock.send(p, (err) => (err ? reject(err) : resolve())))));
      await pause(2);
    }
    sock.close();
  }
  process.stdout.write(`${JSON.stringify({ sent: k, sha256: hash.digest('hex') })}\n`);
} else {
  process.stderr.write('usage: udp-run.mjs recv|send ...\n');
  process.exitCode = 2;
}
