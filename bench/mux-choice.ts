/**
 * Why the tunnel is HTTP/2: one stream's bulk throughput and CPU per end
 * over a TLS 1.3 loopback connection, for the transports a tunnel could use.
 *
 *   node build/bench/mux-choice.js [--seconds 3] [--rounds 3] [--cpu 1] [--only tls,h2,...]
 *
 * Cases (each a fresh pair of processes and a fresh TLS connection):
 * - `tcp`: plain TCP, no TLS, for scale (what TLS itself costs).
 * - `tls`: the raw TLS socket, no multiplexing: the ceiling of any multiplexer.
 * - `h2`: node:http2 on that TLS socket as the tunnel sets it up (the
 *   receiving end is the HTTP/2 server, like the agent; windows 8 MiB per
 *   stream and 64 MiB per connection, maxFrameSize 256 KiB), one CONNECT
 *   stream, the Http2Stream read and written directly.
 * - `h2-tcp`: the same over plain TCP, for scale (what HTTP/2 costs without TLS).
 * - `h2-tunnelsocket`: the same with Portico's TunnelSocket on both ends.
 * - `mux64`, `mux256`: a minimal hand-framed multiplexer: a 9-byte header
 *   (flags 1, stream id 4, length 4) + up to 64 KiB / 256 KiB of payload,
 *   header and payload written under cork/uncork; the receiver cuts frames
 *   into subarray views pushed into one Readable per stream. It has NO flow
 *   control (push()'s return value is ignored; only TCP backpressure on the
 *   sender): an optimistic upper bound of a hand-rolled multiplexer.
 * - `h2x8`, `mux64x8`: 8 concurrent streams on one connection, total.
 *
 * Both processes (sender = the gateway's role: TLS server, HTTP/2 client;
 * receiver = the agent's role: TLS client, HTTP/2 server) are pinned to the
 * same CPU (--cpu, default 1) with taskset when it exists, like the two
 * tunnel ends in the tunnel scenario. The sender writes 256 KiB chunks
 * (backpressure honoured) for --seconds, then ends its streams. Throughput
 * is bytes received from the receiver's first byte to its last stream's
 * end; CPU per end is process.cpuUsage() over each end's data phase,
 * divided by the bytes (MB = 10^6 bytes). Cases alternate within each of
 * --rounds rounds; each figure is the median round, with the min–max
 * spread.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable, type Duplex } from 'node:stream';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { TunnelSocket } from '../src/tunnel/socket.js';
import { makeCert } from './tls-cert.js';
import { pinned } from './util.js';

const CASES = ['tcp', 'tls', 'h2', 'h2-tcp', 'h2-tunnelsocket', 'mux64', 'mux256', 'h2x8', 'mux64x8'] as const;
type CaseName = (typeof CASES)[number];

interface CaseSpec {
  transport: 'tcp' | 'tls' | 'h2' | 'mux';
  streams: number;
  wrap?: boolean;
  /** No TLS: plain TCP under the case. */
  plain?: boolean;
  maxPayload?: number;
}

const SPECS: Record<CaseName, CaseSpec> = {
  tcp: { transport: 'tcp', streams: 1, plain: true },
  tls: { transport: 'tls', streams: 1 },
  h2: { transport: 'h2', streams: 1 },
  'h2-tcp': { transport: 'h2', streams: 1, plain: true },
  'h2-tunnelsocket': { transport: 'h2', streams: 1, wrap: true },
  mux64: { transport: 'mux', streams: 1, maxPayload: 64 * 1024 },
  mux256: { transport: 'mux', streams: 1, maxPayload: 256 * 1024 },
  h2x8: { transport: 'h2', streams: 8 },
  mux64x8: { transport: 'mux', streams: 8, maxPayload: 64 * 1024 },
};

/** As the tunnel sets them (src/tunnel/session.ts, agent.ts; protocol.ts MAX_FRAME_SIZE). */
const STREAM_WINDOW = 8 * 1024 * 1024;
const CONNECTION_WINDOW = 64 * 1024 * 1024;
const MAX_FRAME_SIZE = 256 * 1024;
const H2_OPTIONS = {
  settings: { enablePush: false, initialWindowSize: STREAM_WINDOW, maxFrameSize: MAX_FRAME_SIZE, maxConcurrentStreams: 100_000 },
  maxSessionMemory: Math.ceil((2 * CONNECTION_WINDOW) / (1024 * 1024)) + 16,
};
const CHUNK = 256 * 1024;
const ALPN = 'portico-tunnel/1';

/** What a child prints as its last stdout line. */
interface EndReport {
  role: 'send' | 'recv';
  bytes: number;
  ms: number;
  cpuUs: number;
  userUs: number;
  /** `data` events the receiver's consumer saw (0 for the sender). */
  reads: number;
}

// ---------------------------------------------------------------------------
// Hand-framed multiplexer (case mux*): frame = flags u8, stream id u32, length u32, payload.

const FLAG_END = 1;
const HEADER = 9;

class MuxSender {
  private readonly waiting: (() => void)[] = [];
  constructor(
    private readonly socket: net.Socket,
    private readonly maxPayload: number,
  ) {
    socket.on('drain', () => {
      const all = this.waiting.splice(0);
      for (const cb of all) cb();
    });
  }

  /** Frames `chunk` for stream `id`; `cb` once the socket takes more. */
  send(id: number, chunk: Buffer, cb: () => void): void {
    const s = this.socket;
    s.cork();
    let ok = true;
    for (let off = 0; off < chunk.length; off += this.maxPayload) {
      const len = Math.min(this.maxPayload, chunk.length - off);
      const h = Buffer.allocUnsafe(HEADER);
      h[0] = 0;
      h.writeUInt32BE(id, 1);
      h.writeUInt32BE(len, 5);
      s.write(h);
      ok = s.write(len === chunk.length ? chunk : chunk.subarray(off, off + len));
    }
    s.uncork();
    if (ok) cb();
    else this.waiting.push(cb);
  }

  end(id: number, cb: () => void): void {
    const h = Buffer.allocUnsafe(HEADER);
    h[0] = FLAG_END;
    h.writeUInt32BE(id, 1);
    h.writeUInt32BE(0, 5);
    if (this.socket.write(h)) cb();
    else this.waiting.push(cb);
  }

  stream(id: number): Writable {
    return new Writable({
      highWaterMark: 64 * 1024,
      write: (chunk: Buffer, _enc, cb) => this.send(id, chunk, () => cb()),
      final: (cb) => this.end(id, () => cb()),
    });
  }
}

class MuxReceiver {
  private readonly streams = new Map<number, Readable>();
  private readonly head = Buffer.alloc(HEADER);
  private headLen = 0;
  private current: Readable | undefined;
  private remaining = 0;

  constructor(private readonly onStream: (r: Readable) => void) {}

  /** Cuts `chunk` into frames; payloads go to their stream as views of `chunk`. */
  readonly onData = (chunk: Buffer): void => {
    let off = 0;
    while (off < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - off);
        this.current!.push(n === chunk.length ? chunk : chunk.subarray(off, off + n)); // no flow control: push()'s answer is ignored
        this.remaining -= n;
        off += n;
        continue;
      }
      const n = Math.min(HEADER - this.headLen, chunk.length - off);
      chunk.copy(this.head, this.headLen, off, off + n);
      this.headLen += n;
      off += n;
      if (this.headLen < HEADER) return;
      this.headLen = 0;
      const flags = this.head[0]!;
      const id = this.head.readUInt32BE(1);
      const len = this.head.readUInt32BE(5);
      let r = this.streams.get(id);
      if (r === undefined) {
        r = new Readable({ highWaterMark: 64 * 1024, read() {} });
        this.streams.set(id, r);
        this.onStream(r);
      }
      if (flags & FLAG_END) {
        r.push(null);
        this.streams.delete(id);
      } else {
        this.current = r;
        this.remaining = len;
      }
    }
  };
}

// ---------------------------------------------------------------------------
// Children.

function cpuNow(): { user: number; system: number } {
  return process.cpuUsage();
}

function report(r: EndReport): void {
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

/** Writes CHUNK-sized buffers into `w` until the deadline, then ends it. */
function pump(w: Writable, deadline: number, buf: Buffer, count: (n: number) => void): void {
  const go = (): void => {
    while (Date.now() < deadline) {
      count(buf.length);
      if (!w.write(buf)) {
        w.once('drain', go);
        return;
      }
    }
    w.end();
  };
  go();
}

/** The gateway's role: TLS server, HTTP/2 client, writes. */
async function runSender(spec: CaseSpec, seconds: number, certFile: string, keyFile: string): Promise<void> {
  const buf = Buffer.alloc(CHUNK, 0x61);
  const server = spec.plain ? net.createServer() : tls.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), ALPNProtocols: [ALPN], minVersion: 'TLSv1.3' });
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    process.stdout.write(`port ${typeof addr === 'object' && addr !== null ? addr.port : 0}\n`);
  });
  const socket = await new Promise<net.Socket>((resolve) => server.once(spec.plain ? 'connection' : 'secureConnection', resolve));
  server.close();
  socket.on('error', () => {});
  let t0 = 0;
  let c0 = cpuNow();
  let bytes = 0;
  const start = (): number => {
    t0 = Date.now();
    c0 = cpuNow();
    return t0 + seconds * 1000;
  };
  const finish = (): void => {
    const c = process.cpuUsage(c0);
    report({ role: 'send', bytes, ms: Date.now() - t0, cpuUs: c.user + c.system, userUs: c.user, reads: 0 });
    setImmediate(() => process.exit(0));
  };
  // The sender's data phase lasts until the receiver has everything and closes.
  socket.once('close', finish);
  const count = (n: number): void => {
    bytes += n;
  };
  if (spec.transport === 'tcp' || spec.transport === 'tls') {
    const deadline = start();
    pump(socket, deadline, buf, count);
    return;
  }
  if (spec.transport === 'mux') {
    const mux = new MuxSender(socket, spec.maxPayload!);
    const deadline = start();
    for (let i = 1; i <= spec.streams; i++) pump(mux.stream(i), deadline, buf, count);
    return;
  }
  const session = http2.connect('http://portico-tunnel.invalid', { createConnection: () => socket, ...H2_OPTIONS, peerMaxConcurrentStreams: 1024 });
  session.on('error', () => {});
  await new Promise<void>((resolve) => session.once('connect', () => resolve()));
  session.setLocalWindowSize(CONNECTION_WINDOW);
  const streams = await Promise.all(
    Array.from({ length: spec.streams }, () => {
      const req = session.request({ ':method': 'CONNECT', ':authority': 'bench' }, { endStream: false });
      req.on('error', () => {});
      return new Promise<Duplex>((resolve) => req.once('response', () => resolve(spec.wrap ? new TunnelSocket(req, {}) : req)));
    }),
  );
  const deadline = start();
  for (const w of streams) {
    w.on('error', () => {});
    // The receiver's END_STREAM ends our readable side.
    w.resume();
    pump(w, deadline, buf, count);
  }
}

/** The agent's role: TLS client, HTTP/2 server, reads. */
async function runReceiver(spec: CaseSpec, port: number): Promise<void> {
  const socket: net.Socket =
    spec.plain ? net.connect({ host: '127.0.0.1', port }) : tls.connect({ host: '127.0.0.1', port, ALPNProtocols: [ALPN], rejectUnauthorized: false, minVersion: 'TLSv1.3' });
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once(spec.plain ? 'connect' : 'secureConnect', () => resolve()));
  let bytes = 0;
  let t0 = 0;
  let c0 = cpuNow();
  let ended = 0;
  let reads = 0;
  const first = (): void => {
    if (t0 === 0) {
      t0 = Date.now();
      c0 = cpuNow();
    }
  };
  const streamEnded = (): void => {
    if (++ended < spec.streams) return;
    const c = process.cpuUsage(c0);
    report({ role: 'recv', bytes, ms: Date.now() - t0, cpuUs: c.user + c.system, userUs: c.user, reads });
    setImmediate(() => {
      socket.destroy();
      process.exit(0);
    });
  };
  const consume = (r: Readable): void => {
    r.on('data', (chunk: Buffer) => {
      first();
      reads++;
      bytes += chunk.length;
    });
    r.once('end', streamEnded);
    r.on('error', () => {});
  };
  if (spec.transport === 'tcp' || spec.transport === 'tls') return consume(socket);
  if (spec.transport === 'mux') {
    const mux = new MuxReceiver(consume);
    socket.on('data', mux.onData);
    return;
  }
  const session = http2.performServerHandshake(socket, H2_OPTIONS);
  session.on('error', () => {});
  session.once('remoteSettings', () => session.setLocalWindowSize(CONNECTION_WINDOW));
  session.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    if (!spec.wrap) return consume(stream);
    const s = new TunnelSocket(stream, {}, { allowHalfOpen: true });
    consume(s);
    s.once('end', () => s.end());
  });
}

// ---------------------------------------------------------------------------
// Orchestration.

interface Measured {
  gbps: number;
  sendUsPerMB: number;
  recvUsPerMB: number;
  sendUserUsPerMB: number;
  recvUserUsPerMB: number;
  /** Gbit/s one fully busy core would carry: 8000 / (send + recv µs per MB). */
  perCore: number;
  /** Mean bytes per `data` event at the receiver. */
  readSize: number;
}

const SELF = fileURLToPath(import.meta.url);

function child(cpu: number | undefined, args: string[], onLine: (line: string) => void, timeoutMs: number): Promise<string[]> {
  const [cmd, argv] = pinned(cpu, process.execPath, [SELF, ...args]);
  const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let rest = '';
  p.stdout.setEncoding('utf8');
  p.stdout.on('data', (d: string) => {
    rest += d;
    let i;
    while ((i = rest.indexOf('\n')) >= 0) {
      const line = rest.slice(0, i);
      rest = rest.slice(i + 1);
      lines.push(line);
      onLine(line);
    }
  });
  const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    p.once('error', reject);
    p.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(lines);
      else reject(new Error(`${args.join(' ')}: exited ${code ?? signal}`));
    });
  });
}

async function measure(name: CaseName, seconds: number, cpu: number | undefined, cert: { cert: string; key: string }): Promise<Measured> {
  const timeout = (seconds + 30) * 1000;
  let recv: Promise<string[]> | undefined;
  const send = child(
    cpu,
    ['--role', 'send', '--case', name, '--seconds', String(seconds), '--cert', cert.cert, '--key', cert.key],
    (line) => {
      const m = /^port (\d+)$/.exec(line);
      if (m) recv = child(cpu, ['--role', 'recv', '--case', name, '--port', m[1]!], () => {}, timeout);
    },
    timeout,
  );
  const sendLines = await send;
  if (recv === undefined) throw new Error(`${name}: the sender never listened`);
  const recvLines = await recv;
  const s = JSON.parse(sendLines.at(-1)!) as EndReport;
  const r = JSON.parse(recvLines.at(-1)!) as EndReport;
  if (s.bytes !== r.bytes) throw new Error(`${name}: sent ${s.bytes} bytes but received ${r.bytes}`);
  const mb = r.bytes / 1e6;
  return {
    gbps: (r.bytes * 8) / (r.ms / 1000) / 1e9,
    sendUsPerMB: s.cpuUs / mb,
    recvUsPerMB: r.cpuUs / mb,
    sendUserUsPerMB: s.userUs / mb,
    recvUserUsPerMB: r.userUs / mb,
    readSize: r.bytes / Math.max(1, r.reads),
    perCore: 8000 / ((s.cpuUs + r.cpuUs) / mb),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const role = arg(argv, '--role');
  if (role !== undefined) {
    const name = arg(argv, '--case') as CaseName;
    const spec = SPECS[name];
    // A child never outlives its run.
    setTimeout(() => process.exit(3), (Number(arg(argv, '--seconds') ?? 3) + 25) * 1000).unref();
    if (role === 'send') return runSender(spec, Number(arg(argv, '--seconds')), arg(argv, '--cert')!, arg(argv, '--key')!);
    return runReceiver(spec, Number(arg(argv, '--port')));
  }
  const seconds = Number(arg(argv, '--seconds') ?? 3);
  const rounds = Number(arg(argv, '--rounds') ?? 3);
  const cpuArg = arg(argv, '--cpu') ?? '1';
  const cpu = cpuArg === 'none' || os.cpus().length < 2 ? undefined : Number(cpuArg);
  const only = arg(argv, '--only');
  const cases = only ? (only.split(',') as CaseName[]).filter((c) => CASES.includes(c)) : [...CASES];
  if (!(seconds > 0 && seconds <= 30) || !(rounds >= 1 && rounds <= 9) || cases.length === 0) {
    process.stderr.write('usage: node build/bench/mux-choice.js [--seconds 1-30] [--rounds 1-9] [--cpu N|none] [--only ' + CASES.join(',') + ']\n');
    process.exit(2);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-mux-'));
  try {
    const cert = await makeCert(dir);
    process.stdout.write(`mux-choice: ${seconds} s per case, ${rounds} rounds, both ends ${cpu === undefined ? 'unpinned' : `pinned to CPU ${cpu}`}, TLS 1.3 loopback, ${CHUNK / 1024} KiB writes; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
    const results = new Map<CaseName, Measured[]>(cases.map((c) => [c, []]));
    for (let round = 0; round < rounds; round++) {
      // Alternate the order: odd rounds run the cases backwards.
      const order = round % 2 === 0 ? cases : [...cases].reverse();
      for (const name of order) {
        const m = await measure(name, seconds, cpu, cert);
        results.get(name)!.push(m);
        process.stdout.write(`  round ${round + 1} ${name.padEnd(16)} ${m.gbps.toFixed(2)} Gbit/s  send ${m.sendUsPerMB.toFixed(0)} µs/MB  recv ${m.recvUsPerMB.toFixed(0)} µs/MB  ${(m.readSize / 1024).toFixed(1)} KiB per read\n`);
      }
    }
    const fmt = (xs: number[], digits: number): string => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
    process.stdout.write(`\n| case | Gbit/s | per core, Gbit/s | send µs/MB (user) | recv µs/MB (user) | KiB per read |\n|---|---|---|---|---|---|\n`);
    for (const name of cases) {
      const ms = results.get(name)!;
      process.stdout.write(
        `| ${name} | ${fmt(ms.map((m) => m.gbps), 2)} | ${fmt(ms.map((m) => m.perCore), 2)} | ${fmt(ms.map((m) => m.sendUsPerMB), 0)} (${median(ms.map((m) => m.sendUserUsPerMB)).toFixed(0)}) | ${fmt(ms.map((m) => m.recvUsPerMB), 0)} (${median(ms.map((m) => m.recvUserUsPerMB)).toFixed(0)}) | ${(median(ms.map((m) => m.readSize)) / 1024).toFixed(1)} |\n`,
      );
    }
    process.stdout.write('median of rounds (min–max); µs of CPU (user + system) per 10^6 bytes per end, median user time in brackets; per core = 8000 / (send + recv µs per MB)\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
