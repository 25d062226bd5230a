/**
 * HTTP/2 load generator (used when h2load is not installed):
 *
 *   node h2-load.js --url https://127.0.0.1:PORT/path --connections N --streams M --warmup W --duration S
 *
 * N sessions (TLS with ALPN h2 for https:, prior knowledge for http:; the
 * server certificate is not verified), each keeping M GET streams open at
 * once: a stream that ends starts the next one. Counts completed 2xx
 * responses during the measured window, with latency (request to last
 * byte). A session that fails is counted as an error and re-opened.
 * Prints one LoadReport JSON line.
 */
import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import { ErrorTally, Recorder, Window, args, emitAndExit, report } from './loadgen.js';

const a = args({ url: 'string', connections: 'number', streams: 'number', warmup: 'number', duration: 'number' });
const url = new URL(String(a.url));
const connections = Number(a.connections);
const streams = Number(a.streams);
const win = new Window(Number(a.warmup), Number(a.duration));
const urlPath = url.pathname + url.search;

const rec = new Recorder();
const errors = new ErrorTally();
let ok = 0;
let failed = 0;
const sessions = new Set<http2.ClientHttp2Session>();

function open(): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url.origin, { rejectUnauthorized: false, settings: { initialWindowSize: 1 << 20 } });
    sessions.add(session);
    session.once('connect', () => resolve(session));
    session.on('error', (err) => {
      if (win.counting()) errors.add(`session: ${err.message}`);
      reject(err);
    });
    session.once('close', () => {
      sessions.delete(session);
      // A session lost during the run is replaced, its streams restarted.
      if (win.running) {
        if (win.counting()) errors.add('session closed during the run');
        setTimeout(() => void open().then(start, () => undefined), 10);
      }
    });
  });
}

function fire(session: http2.ClientHttp2Session): void {
  if (session.closed || session.destroyed) return;
  const t0 = performance.now();
  let status = 0;
  let req: http2.ClientHttp2Stream;
  try {
    req = session.request({ ':method': 'GET', ':path': urlPath }, { endStream: true });
  } catch (err) {
    if (win.counting()) errors.add(`request: ${(err as Error).message}`);
    return;
  }
  req.on('response', (h) => {
    status = Number(h[':status']);
  });
  req.on('data', () => undefined);
  // Each stream ends once (end or error) and starts the next one.
  let settled = false;
  req.once('end', () => {
    if (settled) return;
    settled = true;
    if (!win.active()) return;
    if (!win.measuring) {
      // warm-up: not counted
    } else if (status >= 200 && status < 300) {
      ok++;
      rec.record(performance.now() - t0);
    } else {
      failed++;
      errors.add(`status ${status}`);
    }
    fire(session);
  });
  req.on('error', (err) => {
    if (settled) return;
    settled = true;
    if (!win.active()) return;
    if (win.measuring) errors.add(`stream: ${err.message}`);
    setImmediate(() => fire(session));
  });
}

function start(session: http2.ClientHttp2Session): void {
  for (let i = 0; i < streams; i++) fire(session);
}

let opened: http2.ClientHttp2Session[];
try {
  opened = await Promise.all(Array.from({ length: connections }, open));
} catch (err) {
  process.stderr.write(`h2-load: cannot connect to ${url.origin}: ${(err as Error).message}\n`);
  process.exit(1);
}
for (const s of opened) start(s);
await win.run();
const r = report(ok, win, rec, failed, errors);
for (const s of sessions) s.destroy();
emitAndExit(r);
