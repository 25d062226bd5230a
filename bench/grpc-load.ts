/**
 * gRPC load generator (@grpc/grpc-js, insecure channel: h2c prior knowledge):
 *
 *   node grpc-load.js --mode unary|bidi --target 127.0.0.1:PORT --proto FILE
 *                     --connections C --inflight K --warmup W --duration S
 *
 * - unary: C channels (each its own HTTP/2 connection: local subchannel
 *   pools), each keeping K UnaryEcho calls in flight; a call that completes
 *   starts the next. Counts calls that ended with status OK.
 * - bidi: C BidirectionalStreamingEcho streams (one per channel), each
 *   keeping K messages in flight; each echoed message sends the next.
 *   Counts echoed messages.
 *
 * Latency is call start to response (unary) or send to echo (bidi).
 * Prints one LoadReport JSON line.
 */
import { performance } from 'node:perf_hooks';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { ErrorTally, Recorder, Window, args, emitAndExit, fail, report } from './loadgen.js';

const a = args({ mode: 'string', target: 'string', proto: 'string', connections: 'number', inflight: 'number', warmup: 'number', duration: 'number' });
const mode = String(a.mode);
if (mode !== 'unary' && mode !== 'bidi') fail(`--mode must be unary or bidi, got '${mode}'`);
const target = String(a.target);
const connections = Number(a.connections);
const inflight = Number(a.inflight);
const win = new Window(Number(a.warmup), Number(a.duration));

interface EchoMessage {
  message: string;
}
type UnaryCb = (err: grpc.ServiceError | null, res?: EchoMessage) => void;
interface EchoClient extends grpc.Client {
  UnaryEcho(req: EchoMessage, cb: UnaryCb): grpc.ClientUnaryCall;
  BidirectionalStreamingEcho(): grpc.ClientDuplexStream<EchoMessage, EchoMessage>;
}
type EchoCtor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => EchoClient;

const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(String(a.proto), { keepCase: true })) as unknown as { echo: { Echo: EchoCtor } };
const REQUEST: EchoMessage = { message: 'hello, world\n' };

const rec = new Recorder();
const errors = new ErrorTally();
let ok = 0;
let failed = 0;

// Each channel its own connection: without a local subchannel pool, grpc-js
// shares one subchannel (one HTTP/2 connection) between channels to the same target.
const clients = Array.from(
  { length: connections },
  () => new pkg.echo.Echo(target, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.initial_reconnect_backoff_ms': 100 }),
);

const ready = (c: EchoClient): Promise<void> =>
  new Promise((resolve, reject) => c.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())));

function unary(c: EchoClient): void {
  const t0 = performance.now();
  c.UnaryEcho(REQUEST, (err) => {
    if (!win.active()) return;
    if (!win.measuring) {
      // warm-up: not counted
    } else if (err === null) {
      ok++;
      rec.record(performance.now() - t0);
    } else {
      failed++;
      errors.add(`${grpc.status[err.code] ?? err.code}: ${err.details}`);
    }
    unary(c);
  });
}

function bidi(c: EchoClient): void {
  const call = c.BidirectionalStreamingEcho();
  const sent: number[] = [];
  let head = 0;
  call.on('data', () => {
    const t0 = sent[head++];
    if (head > 4096) {
      sent.splice(0, head);
      head = 0;
    }
    if (!win.active()) return;
    if (win.measuring) {
      ok++;
      if (t0 !== undefined) rec.record(performance.now() - t0);
    }
    sent.push(performance.now());
    call.write(REQUEST);
  });
  call.on('error', (err: grpc.ServiceError) => {
    if (!win.running) return;
    if (win.counting()) errors.add(`stream ${grpc.status[err.code] ?? err.code}: ${err.details}`);
    // A stream lost during the run is replaced.
    setTimeout(() => bidi(c), 10);
  });
  call.on('end', () => undefined);
  for (let i = 0; i < inflight; i++) {
    sent.push(performance.now());
    call.write(REQUEST);
  }
}

try {
  await Promise.all(clients.map(ready));
} catch (err) {
  process.stderr.write(`grpc-load: cannot connect to ${target}: ${(err as Error).message}\n`);
  process.exit(1);
}
for (const c of clients) {
  if (mode === 'unary') for (let i = 0; i < inflight; i++) unary(c);
  else bidi(c);
}
await win.run();
const r = report(ok, win, rec, failed, errors);
for (const c of clients) c.close();
emitAndExit(r);
