/**
 * WebSocket load generator:
 *
 *   node ws-load.js --url ws://127.0.0.1:PORT/path --connections C --inflight K --warmup W --duration S
 *
 * C connections (no compression), each keeping K text messages in flight:
 * every echo received is counted (with its round-trip latency; echoes come
 * back in order, so a FIFO of send times gives it) and answered with the
 * next message. A connection lost during the run is counted as an error and
 * re-opened. Prints one LoadReport JSON line.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { ErrorTally, Recorder, Window, args, emitAndExit, report } from './loadgen.js';

const a = args({ url: 'string', connections: 'number', inflight: 'number', warmup: 'number', duration: 'number' });
const url = String(a.url);
const connections = Number(a.connections);
const inflight = Number(a.inflight);
const win = new Window(Number(a.warmup), Number(a.duration));

/** The same 13 bytes as the HTTP scenarios' small body. */
const MESSAGE = 'hello, world\n';

const rec = new Recorder();
const errors = new ErrorTally();
let echoed = 0;
const sockets = new Set<WebSocket>();

/** One connection and the send times of its messages in flight (oldest first). */
interface Conn {
  ws: WebSocket;
  sent: number[];
  head: number;
}

function open(): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const conn: Conn = { ws, sent: [], head: 0 };
    sockets.add(ws);
    ws.once('open', () => resolve(conn));
    ws.on('message', () => {
      const t0 = conn.sent[conn.head++];
      if (conn.head > 4096) {
        conn.sent.splice(0, conn.head);
        conn.head = 0;
      }
      if (!win.active()) return;
      if (win.measuring) {
        echoed++;
        if (t0 !== undefined) rec.record(performance.now() - t0);
      }
      conn.sent.push(performance.now());
      ws.send(MESSAGE);
    });
    ws.on('error', (err) => {
      if (win.counting()) errors.add(`socket: ${err.message}`);
      reject(err);
    });
    ws.once('close', (code) => {
      sockets.delete(ws);
      if (win.running) {
        if (win.counting()) errors.add(`closed during the run (${code})`);
        setTimeout(() => void open().then(start, () => undefined), 10);
      }
    });
  });
}

function start(conn: Conn): void {
  for (let i = 0; i < inflight; i++) {
    conn.sent.push(performance.now());
    conn.ws.send(MESSAGE);
  }
}

let opened: Conn[];
try {
  opened = await Promise.all(Array.from({ length: connections }, open));
} catch (err) {
  process.stderr.write(`ws-load: cannot open ${url}: ${(err as Error).message}\n`);
  process.exit(1);
}
for (const c of opened) start(c);
await win.run();
const r = report(echoed, win, rec, 0, errors);
for (const ws of sockets) ws.terminate();
emitAndExit(r);
