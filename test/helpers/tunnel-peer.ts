import http from 'node:http';
import http2 from 'node:http2';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import pino from 'pino';
import { proofOf } from '../../src/tunnel/auth.js';
import { CONTROL_PATH, HEADER, TUNNEL_ALPN } from '../../src/tunnel/protocol.js';
import { startGateway, type TestGateway } from './gateway.js';

/** A gateway like startGateway's, whose log lines (debug and up) are kept in `logs` (and `text`, raw). */
export async function startLoggedGateway(doc: unknown): Promise<TestGateway & { logs: Record<string, unknown>[]; text: () => string }> {
  const logs: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        raw.push(line);
        logs.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  const started = await startGateway(doc, pino({ level: 'debug' }, sink));
  // apply() sets the level from the config's log block: keep everything for the assertions.
  started.gateway.logger.level = 'debug';
  return { ...started, logs, text: () => raw.join('\n') };
}

/** One admin request on its own connection; the body parsed as JSON. */
export function adminCall(base: string, method: string, path: string, key: string | null): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(base + path, { method, agent: false, headers: key === null ? {} : { authorization: `Bearer ${key}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text === '' ? undefined : JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A TLS connection to a tunnel listener offering the tunnel ALPN, verified against `ca` (PEM). */
export function dialTunnel(port: number, ca: string, extra: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, ALPNProtocols: [TUNNEL_ALPN], ...extra });
    s.once('secureConnect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/**
 * A hand-played agent: the HTTP/2 server side on a TLS socket to the
 * gateway, where the test decides what the control stream answers. Used to
 * play malicious or broken agents. `control` resolves with the gateway's
 * control stream and its nonce; `received` collects what the gateway wrote
 * on it.
 */
export class RawAgent {
  readonly session: http2.ServerHttp2Session;
  readonly control: Promise<{ stream: http2.ServerHttp2Stream; nonce: string }>;
  received = '';
  readonly closed: Promise<void>;
  readonly connectStreams: http2.ServerHttp2Stream[] = [];
  /** Its local port (the gateway logs it as the peer), kept after the socket closed. */
  readonly localPort: number;

  constructor(readonly socket: tls.TLSSocket) {
    this.localPort = socket.localPort!;
    this.session = http2.performServerHandshake(socket, { settings: { enablePush: false } });
    this.session.on('error', () => undefined);
    socket.on('error', () => undefined);
    this.closed = new Promise((r) => socket.once('close', () => r()));
    this.control = new Promise((resolve) => {
      this.session.on('stream', (stream, headers) => {
        stream.on('error', () => undefined);
        if (headers[':path'] === CONTROL_PATH) {
          stream.on('data', (c: Buffer) => (this.received += c.toString('utf8')));
          resolve({ stream, nonce: String(headers[HEADER.nonce] ?? '') });
        } else {
          this.connectStreams.push(stream);
        }
      });
    });
  }

  /** Answers the control stream as agent `id` with `token`, then announces `services`. */
  async login(id: string, token: string, services: unknown[] | null = []): Promise<http2.ServerHttp2Stream> {
    const { stream, nonce } = await this.control;
    stream.respond({ ':status': 200, [HEADER.id]: id, [HEADER.proof]: proofOf(token, nonce, id) });
    if (services !== null) stream.write(`${JSON.stringify({ type: 'services', services })}\n`);
    return stream;
  }

  /** Every NDJSON object the gateway sent on the control stream so far. */
  messages(): Record<string, unknown>[] {
    return this.received
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
