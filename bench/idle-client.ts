/**
 * The `idle` scenario's client, its own process (pinned by the runner to the
 * load generator's CPU, so none of its work lands on the target's core):
 *
 *   node idle-client.js --port P --path /users/small --host api.example.com
 *                       --count N [--concurrency 100]
 *                       [--warmup-connections 4] [--warmup-requests 100]
 *
 * 1. Warm-up: `--warmup-connections` keep-alive connections, each sending
 *    `--warmup-requests` GETs one after another; then they are closed.
 *    Prints `{"phase":"warm",…}`.
 * 2. On the stdin line `open`: opens `--count` connections, at most
 *    `--concurrency` being set up at a time; each sends ONE keep-alive GET,
 *    reads the whole response, and then stays open and silent. Prints
 *    `{"phase":"open","open":…,"failed":…}`.
 * 3. On the stdin line `close`: prints how many of them the target closed
 *    meanwhile (`{"phase":"closed","closedByPeer":…}`: non-zero means the
 *    memory was read with fewer connections than reported), closes them
 *    all and exits 0. SIGTERM, SIGINT or stdin's end close them too.
 *
 * Raw sockets, not an http.Agent: the client's own memory is not measured,
 * but it must open thousands of connections quickly and predictably.
 */
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    path: { type: 'string', default: '/small' },
    host: { type: 'string', default: '127.0.0.1' },
    count: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '100' },
    'warmup-connections': { type: 'string', default: '4' },
    'warmup-requests': { type: 'string', default: '100' },
  },
});
const int = (name: string, v: string | undefined, min: number): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`idle-client: --${name} must be an integer >= ${min}, got '${String(v)}'\n`);
    process.exit(2);
  }
  return n;
};
const port = int('port', values.port, 1);
const count = int('count', values.count, 1);
const concurrency = int('concurrency', values.concurrency, 1);
const warmConns = int('warmup-connections', values['warmup-connections'], 0);
const warmRequests = int('warmup-requests', values['warmup-requests'], 1);
const request = Buffer.from(`GET ${values.path} HTTP/1.1\r\nHost: ${values.host}\r\nConnection: keep-alive\r\n\r\n`);

/** Time allowed for one connection to connect and receive one whole response. */
const EXCHANGE_TIMEOUT_MS = 10_000;

const report = (o: Record<string, unknown>): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};

/** Parses one HTTP/1.1 response (RFC 9112: Content-Length or chunked framing) from accumulated bytes. */
function responseEnd(buf: Buffer): { status: number; end: number } | undefined {
  const head = buf.indexOf('\r\n\r\n');
  if (head < 0) return undefined;
  const text = buf.subarray(0, head).toString('latin1');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(text);
  if (length !== null) {
    const end = head + 4 + Number(length[1]);
    return buf.length >= end ? { status, end } : undefined;
  }
  if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(text)) {
    // The bodies here are tiny: the last chunk and an empty trailer section end the message.
    const last = buf.indexOf('\r\n0\r\n\r\n', head);
    if (last >= 0) return { status, end: last + 7 };
    return buf.subarray(head + 4, head + 9).toString('latin1') === '0\r\n\r\n' ? { status, end: head + 9 } : undefined;
  }
  // No framing: a 1xx/204/304 without body, or a body up to the close; only bodiless ones are expected.
  return { status, end: head + 4 };
}

/** A keep-alive connection sending one request at a time. */
class Conn {
  readonly sock: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private waiting: ((r: { status: number } | Error) => void) | undefined;
  closedByPeer = false;
  private destroyedByUs = false;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', (c: Buffer) => {
      this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c]);
      const r = responseEnd(this.buf);
      if (r === undefined || this.waiting === undefined) return;
      this.buf = this.buf.subarray(r.end);
      const w = this.waiting;
      this.waiting = undefined;
      w({ status: r.status });
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (!this.destroyedByUs) this.closedByPeer = true;
      const w = this.waiting;
      this.waiting = undefined;
      w?.(new Error('connection closed by the target'));
    });
  }

  static open(): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      const timer = setTimeout(() => sock.destroy(new Error('connect timeout')), EXCHANGE_TIMEOUT_MS);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      sock.once('error', onError);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeListener('error', onError);
        resolve(new Conn(sock));
      });
    });
  }

  /** One request; resolves with the status of its response. */
  exchange(): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`no response in ${EXCHANGE_TIMEOUT_MS} ms`));
      }, EXCHANGE_TIMEOUT_MS);
      this.waiting = (r) => {
        clearTimeout(timer);
        if (r instanceof Error) reject(r);
        else resolve(r.status);
      };
      this.sock.write(request);
    });
  }

  destroy(): void {
    this.destroyedByUs = true;
    this.sock.destroy();
  }
}

const open: Conn[] = [];
const errors = new Map<string, number>();
const fail = (err: unknown): void => {
  const m = err instanceof Error ? err.message : String(err);
  errors.set(m, (errors.get(m) ?? 0) + 1);
};
const errorDetail = (): string => [...errors.entries()].map(([m, n]) => `${n} × ${m}`).join('; ');

/** Opens a connection and makes one exchange; the connection is kept only after a 2xx. */
async function openOne(requests: number): Promise<Conn | undefined> {
  let c: Conn | undefined;
  try {
    c = await Conn.open();
    for (let i = 0; i < requests; i++) {
      const status = await c.exchange();
      if (status < 200 || status > 299) throw new Error(`status ${status}`);
    }
    return c;
  } catch (err) {
    fail(err);
    c?.destroy();
    return undefined;
  }
}

async function warm(): Promise<void> {
  const conns = await Promise.all(Array.from({ length: warmConns }, () => openOne(warmRequests)));
  const ok = conns.filter((c) => c !== undefined).length;
  for (const c of conns) c?.destroy();
  report({ phase: 'warm', ok, failed: warmConns - ok, errorDetail: errorDetail() });
  errors.clear();
}

async function openAll(): Promise<void> {
  let next = 0;
  let failed = 0;
  const started = Date.now();
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      const c = await openOne(1);
      if (c === undefined) failed++;
      else open.push(c);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  report({ phase: 'open', open: open.length, failed, ms: Date.now() - started, errorDetail: errorDetail() });
}

let closing = false;
function closeAll(code: number): void {
  if (closing) return;
  closing = true;
  report({ phase: 'closed', closedByPeer: open.filter((c) => c.closedByPeer).length });
  for (const c of open) c.destroy();
  process.exit(code);
}

process.on('SIGTERM', () => closeAll(0));
process.on('SIGINT', () => closeAll(0));
let lines = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  lines += chunk;
  let nl: number;
  while ((nl = lines.indexOf('\n')) >= 0) {
    const cmd = lines.slice(0, nl).trim();
    lines = lines.slice(nl + 1);
    if (cmd === 'open') void openAll();
    else if (cmd === 'close') closeAll(0);
  }
});
process.stdin.on('end', () => closeAll(0));

await warm();
