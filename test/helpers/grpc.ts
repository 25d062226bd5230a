import type { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * Real gRPC servers and clients for the gRPC proxy tests (grpc-js on
 * 127.0.0.1:0, h2c or TLS), the Echo and HelloWorld services of
 * test/fixtures/grpc, and a raw node:http2 server and client for what
 * grpc-js does not expose (resetting a stream, a call whose deadline the
 * client does not enforce itself).
 *
 * Every handler:
 * - records the call (`server.calls`): path, metadata, messages received,
 *   whether it was cancelled, when it ended;
 * - echoes the incoming metadata (but the protocol's and the gateway's own
 *   headers, see ECHO_SKIP) back as response headers AND trailers,
 *   `-bin` keys included, and adds `x-server: <name>` to both;
 * - obeys control metadata sent with the call:
 *   `x-fail: <code>` ends the call with that status; its message is the
 *     UTF-8 of `x-fail-message-bin`, else `x-fail-message`, else "failed";
 *     with `x-fail-after: <n>` a streaming response sends n messages first;
 *   `x-hang: 1` never answers (until the client or the gateway cancels);
 *   `x-stream-count: <n>` server-streaming replies (default 3);
 *   `x-stream-size: <bytes>` pads each server-streamed message to that
 *     size (for flow-control tests; honours the stream's backpressure);
 *   `x-read-delay-ms: <ms>` reads client messages slowly (one per delay).
 */

/** The folder of the .proto fixtures; tests run from the repo root (scripts/test.mjs). */
export const PROTO_DIR = join(process.cwd(), 'test', 'fixtures', 'grpc');

const LOAD_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

export type Method = protoLoader.MethodDefinition<object, object>;

function loadService(file: string, service: string): { service: grpc.ServiceDefinition; methods: Record<string, Method> } {
  const def = protoLoader.loadSync(join(PROTO_DIR, file), LOAD_OPTIONS);
  const svc = def[service] as protoLoader.ServiceDefinition | undefined;
  if (svc === undefined) throw new Error(`${file} has no service ${service}`);
  return { service: svc as unknown as grpc.ServiceDefinition, methods: svc as unknown as Record<string, Method> };
}

let cache: { echo: ReturnType<typeof loadService>; hello: ReturnType<typeof loadService>; health: ReturnType<typeof loadService> } | null = null;
function protos() {
  cache ??= {
    echo: loadService('echo.proto', 'echo.Echo'),
    hello: loadService('helloworld.proto', 'helloworld.HelloWorld'),
    health: loadService('health.proto', 'grpc.health.v1.Health'),
  };
  return cache;
}

/** Methods of echo.Echo: UnaryEcho, ServerStreamingEcho, ClientStreamingEcho, BidirectionalStreamingEcho. */
export function echoMethods(): Record<'UnaryEcho' | 'ServerStreamingEcho' | 'ClientStreamingEcho' | 'BidirectionalStreamingEcho', Method> {
  return protos().echo.methods as never;
}

/** Methods of helloworld.HelloWorld: SayHelloWorld, ListHello, SayMoreHello, SayHelloChat. */
export function helloMethods(): Record<'SayHelloWorld' | 'ListHello' | 'SayMoreHello' | 'SayHelloChat', Method> {
  return protos().hello.methods as never;
}

/** Methods of grpc.health.v1.Health: Check, Watch. */
export function healthMethods(): Record<'Check' | 'Watch', Method> {
  return protos().health.methods as never;
}

/** Headers that are the protocol's or the gateway's, not the caller's metadata: not echoed. */
const ECHO_SKIP = /^(grpc-|x-forwarded-|:)|^(user-agent|te|content-type|host|x-real-ip|x-request-id|forwarded|via)$/;

export interface CallRecord {
  /** e.g. /echo.Echo/UnaryEcho */
  path: string;
  metadata: grpc.Metadata;
  /** `:authority` as the server saw it. */
  host: string;
  /** Request messages received. */
  received: Record<string, unknown>[];
  /** Response messages written so far (accepted by grpc-js, which holds back on backpressure). */
  sent: number;
  /** The call was cancelled (by the client, the gateway, or its deadline). */
  cancelled: boolean;
  /** The handler finished (status sent or cancelled). */
  ended: boolean;
  /** The deadline the server saw (from grpc-timeout), or Infinity. */
  deadline: number;
}

export interface GrpcTlsServerOptions {
  certPem: string;
  keyPem: string;
  /** Require client certificates signed by this CA (mutual TLS). */
  clientCaPem?: string;
}

export interface GrpcServerOptions {
  /** Reported in `x-server` metadata; default 'grpc'. */
  name?: string;
  tls?: GrpcTlsServerOptions;
  /** Serve grpc.health.v1.Health too (statuses set with `setHealth`). */
  health?: boolean;
}

export type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'UNKNOWN' | 'SERVICE_UNKNOWN';

export interface GrpcTestServer {
  readonly name: string;
  readonly server: grpc.Server;
  readonly port: number;
  /** 127.0.0.1:port */
  readonly address: string;
  readonly calls: CallRecord[];
  /** Calls of `path` (all calls without one). */
  callsTo(path?: string): CallRecord[];
  /** The health status of a service ('' = the whole server); unknown services answer NOT_FOUND. */
  setHealth(service: string, status: ServingStatus): void;
  /** Health checks received. */
  healthChecks(): number;
  close(): Promise<void>;
}

function metadataToEcho(md: grpc.Metadata, name: string): grpc.Metadata {
  const out = new grpc.Metadata();
  // getMap() keeps one value per key: take the keys from it and every value from get().
  for (const key of Object.keys(md.getMap())) {
    if (ECHO_SKIP.test(key)) continue;
    for (const v of md.get(key)) out.add(key, v);
  }
  out.set('x-server', name);
  return out;
}

function control(md: grpc.Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return v === undefined ? undefined : String(v);
}

function failure(md: grpc.Metadata, trailers: grpc.Metadata): (grpc.ServerErrorResponse & { code: number }) | null {
  const code = control(md, 'x-fail');
  if (code === undefined) return null;
  const bin = md.get('x-fail-message-bin')[0];
  const details = Buffer.isBuffer(bin) ? bin.toString('utf8') : (control(md, 'x-fail-message') ?? 'failed');
  return Object.assign(new Error(details), { code: Number(code), details, metadata: trailers });
}

/** Starts a grpc-js server with Echo and HelloWorld (and optionally Health) on 127.0.0.1:0. */
export async function startGrpcServer(options: GrpcServerOptions = {}): Promise<GrpcTestServer> {
  const name = options.name ?? 'grpc';
  const calls: CallRecord[] = [];
  const health = new Map<string, ServingStatus>([['', 'SERVING']]);
  let healthChecks = 0;
  const server = new grpc.Server();

  const record = (call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>): CallRecord => {
    const deadline = call.getDeadline();
    const r: CallRecord = {
      path: call.getPath(),
      metadata: call.metadata.clone(),
      host: call.getHost(),
      received: [],
      sent: 0,
      cancelled: false,
      ended: false,
      deadline: deadline instanceof Date ? deadline.getTime() : Number(deadline),
    };
    calls.push(r);
    (call as EventEmitter).on('cancelled', () => {
      r.cancelled = true;
      r.ended = true;
    });
    return r;
  };

  type Reply = (req: Record<string, unknown>, i: number) => Record<string, unknown>;
  type Combine = (reqs: Record<string, unknown>[]) => Record<string, unknown>;

  const unary =
    (reply: Reply): grpc.handleUnaryCall<Record<string, unknown>, Record<string, unknown>> =>
    (call, callback) => {
      const r = record(call);
      r.received.push(call.request);
      const echo = metadataToEcho(call.metadata, name);
      if (control(call.metadata, 'x-hang') !== undefined) return;
      const fail = failure(call.metadata, echo);
      call.sendMetadata(echo.clone());
      r.ended = true;
      if (fail !== null) return callback(fail);
      callback(null, reply(call.request, 0), echo);
    };

  const serverStream =
    (reply: Reply): grpc.handleServerStreamingCall<Record<string, unknown>, Record<string, unknown>> =>
    (call) => {
      const r = record(call);
      r.received.push(call.request);
      const md = call.metadata;
      const echo = metadataToEcho(md, name);
      if (control(md, 'x-hang') !== undefined) return;
      call.sendMetadata(echo.clone());
      const fail = failure(md, echo);
      const count = fail !== null ? Number(control(md, 'x-fail-after') ?? 0) : Number(control(md, 'x-stream-count') ?? 3);
      const size = Number(control(md, 'x-stream-size') ?? 0);
      let i = 0;
      const pump = (): void => {
        while (i < count && !call.cancelled) {
          const msg = reply(call.request, i++);
          if (size > 0) msg.message = String(msg.message).padEnd(size, '.');
          r.sent++;
          if (!call.write(msg)) {
            call.once('drain', pump);
            return;
          }
        }
        if (call.cancelled) return;
        r.ended = true;
        if (fail !== null) call.emit('error', fail);
        else call.end(echo);
      };
      pump();
    };

  const readAll = (call: grpc.ServerReadableStream<Record<string, unknown>, unknown> | grpc.ServerDuplexStream<Record<string, unknown>, unknown>, r: CallRecord, onMessage: (m: Record<string, unknown>) => void, onEnd: () => void): void => {
    const delay = Number(control(call.metadata, 'x-read-delay-ms') ?? 0);
    call.on('data', (m: Record<string, unknown>) => {
      r.received.push(m);
      onMessage(m);
      if (delay > 0) {
        call.pause();
        setTimeout(() => call.resume(), delay);
      }
    });
    call.on('end', onEnd);
    call.on('error', () => undefined);
  };

  const clientStream =
    (combine: Combine): grpc.handleClientStreamingCall<Record<string, unknown>, Record<string, unknown>> =>
    (call, callback) => {
      const r = record(call);
      const md = call.metadata;
      const echo = metadataToEcho(md, name);
      const hang = control(md, 'x-hang') !== undefined;
      readAll(call, r, () => undefined, () => {
        if (hang || call.cancelled) return;
        call.sendMetadata(echo.clone());
        r.ended = true;
        const fail = failure(md, echo);
        if (fail !== null) return callback(fail);
        callback(null, combine(r.received), echo);
      });
    };

  const bidi =
    (reply: Reply): grpc.handleBidiStreamingCall<Record<string, unknown>, Record<string, unknown>> =>
    (call) => {
      const r = record(call);
      const md = call.metadata;
      const echo = metadataToEcho(md, name);
      const hang = control(md, 'x-hang') !== undefined;
      if (!hang) call.sendMetadata(echo.clone());
      const fail = failure(md, echo);
      const failAfter = Number(control(md, 'x-fail-after') ?? 0);
      let i = 0;
      readAll(
        call,
        r,
        (m) => {
          if (hang || call.cancelled || r.ended) return;
          if (fail !== null && i >= failAfter) {
            r.ended = true;
            call.emit('error', fail);
            return;
          }
          r.sent++;
          call.write(reply(m, i++));
        },
        () => {
          if (hang || call.cancelled || r.ended) return;
          r.ended = true;
          if (fail !== null) call.emit('error', fail);
          else call.end(echo);
        },
      );
    };

  const text = (m: Record<string, unknown>, key: string): string => String(m[key] ?? '');
  server.addService(protos().echo.service, {
    UnaryEcho: unary((m) => ({ message: text(m, 'message') })),
    ServerStreamingEcho: serverStream((m, i) => ({ message: `${text(m, 'message')} #${i}` })),
    ClientStreamingEcho: clientStream((ms) => ({ message: ms.map((m) => text(m, 'message')).join('') })),
    BidirectionalStreamingEcho: bidi((m) => ({ message: text(m, 'message') })),
  });
  server.addService(protos().hello.service, {
    SayHelloWorld: unary((m) => ({ message: `Hello ${text(m, 'name')}` })),
    ListHello: serverStream((m, i) => ({ message: `Hello ${text(m, 'name')} #${i}` })),
    SayMoreHello: clientStream((ms) => ({ message: `Hello ${ms.map((m) => text(m, 'name')).join(', ')}` })),
    SayHelloChat: bidi((m) => ({ message: `Hello ${text(m, 'name')}` })),
  });
  if (options.health) {
    server.addService(protos().health.service, {
      Check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        healthChecks++;
        record(call).received.push(call.request);
        const status = health.get(call.request.service ?? '');
        if (status === undefined) return callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
        callback(null, { status });
      },
      Watch: (call: grpc.ServerWritableStream<unknown, unknown>) => {
        call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'Watch is not served by the test server' });
      },
    });
  }

  const credentials =
    options.tls === undefined
      ? grpc.ServerCredentials.createInsecure()
      : grpc.ServerCredentials.createSsl(
          options.tls.clientCaPem === undefined ? null : Buffer.from(options.tls.clientCaPem),
          [{ private_key: Buffer.from(options.tls.keyPem), cert_chain: Buffer.from(options.tls.certPem) }],
          options.tls.clientCaPem !== undefined,
        );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    name,
    server,
    port,
    address: `127.0.0.1:${port}`,
    calls,
    callsTo: (path) => (path === undefined ? calls : calls.filter((c) => c.path === path)),
    setHealth: (service, status) => void health.set(service, status),
    healthChecks: () => healthChecks,
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

// ---------------------------------------------------------------------------
// Clients

export interface GrpcClientOptions {
  /** TLS to the server (or the gateway's https listener); absent = h2c. */
  tls?: { caPem: string; certPem?: string; keyPem?: string; serverName?: string };
  /** `:authority` of the calls (grpc.default_authority). */
  authority?: string;
  channelOptions?: grpc.ChannelOptions;
}

/** A grpc-js client: one channel, hence one HTTP/2 connection, to `address` (host:port). */
export function grpcClient(address: string, options: GrpcClientOptions = {}): grpc.Client {
  const creds =
    options.tls === undefined
      ? grpc.credentials.createInsecure()
      : grpc.credentials.createSsl(
          Buffer.from(options.tls.caPem),
          options.tls.keyPem === undefined ? null : Buffer.from(options.tls.keyPem),
          options.tls.certPem === undefined ? null : Buffer.from(options.tls.certPem),
        );
  const channelOptions: grpc.ChannelOptions = { ...options.channelOptions };
  if (options.authority !== undefined) channelOptions['grpc.default_authority'] = options.authority;
  if (options.tls?.serverName !== undefined) channelOptions['grpc.ssl_target_name_override'] = options.tls.serverName;
  return new grpc.Client(address, creds, channelOptions);
}

/** Metadata from a plain object: a Buffer value goes to a -bin key; an array adds several values. */
export function toMetadata(values: Record<string, string | Buffer | (string | Buffer)[]> = {}): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(values)) for (const one of Array.isArray(v) ? v : [v]) md.add(k, one);
  return md;
}

export interface CallOptions {
  metadata?: Record<string, string | Buffer | (string | Buffer)[]>;
  /** Deadline in ms from now. */
  deadlineMs?: number;
}

export interface CallResult<T> {
  /** The single response (unary, client streaming) or every streamed one. */
  responses: T[];
  /** Response headers (initial metadata). */
  headers: grpc.Metadata;
  /** Trailers (the status's metadata). */
  trailers: grpc.Metadata;
}

/** A failed call: its status, as grpc-js reports it. */
export type CallError = grpc.ServiceError;

function callOptions(o: CallOptions): grpc.CallOptions {
  return o.deadlineMs === undefined ? {} : { deadline: Date.now() + o.deadlineMs };
}

type SingleCallback = (err: grpc.ServiceError | null, value?: unknown) => void;

/**
 * A call with one response (unary or client streaming): `start` makes the
 * call with the given callback; resolves once both the response and the
 * status arrived, or rejects with a CallError (code, details, metadata).
 */
function singleResponse<T>(start: (callback: SingleCallback) => grpc.ClientUnaryCall | grpc.ClientWritableStream<unknown>): Promise<CallResult<T>> {
  return new Promise((resolve, reject) => {
    let headers = new grpc.Metadata();
    let trailers = new grpc.Metadata();
    let response: T | undefined;
    let error: grpc.ServiceError | null = null;
    let pending = 2;
    const settle = () => {
      if (--pending > 0) return;
      if (error !== null) reject(error);
      else resolve({ responses: [response as T], headers, trailers });
    };
    const call = start((err, value) => {
      error = err;
      response = value as T;
      settle();
    });
    call.on('metadata', (md: grpc.Metadata) => (headers = md));
    call.on('status', (st: grpc.StatusObject) => {
      trailers = st.metadata;
      settle();
    });
  });
}

/** A unary call; rejects with a CallError (code, details, metadata). */
export function unaryCall<T = { message: string }>(client: grpc.Client, m: Method, req: object, o: CallOptions = {}): Promise<CallResult<T>> {
  return singleResponse<T>((cb) => client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, toMetadata(o.metadata), callOptions(o), cb));
}

/** A server-streaming call: every response until the status; rejects with a CallError carrying `responses` received before it. */
export function serverStreamCall<T = { message: string }>(client: grpc.Client, m: Method, req: object, o: CallOptions = {}): Promise<CallResult<T>> {
  const call = client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, req, toMetadata(o.metadata), callOptions(o));
  return collect<T>(call);
}

/** A client-streaming call: sends `reqs`, half-closes, and waits for the one response. */
export function clientStreamCall<T = { message: string }>(client: grpc.Client, m: Method, reqs: object[], o: CallOptions = {}): Promise<CallResult<T>> {
  return singleResponse<T>((cb) => {
    const call = client.makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, toMetadata(o.metadata), callOptions(o), cb);
    for (const r of reqs) call.write(r);
    call.end();
    return call;
  });
}

/** A bidi call that sends `reqs`, half-closes and collects every response until the status. */
export function bidiCall<T = { message: string }>(client: grpc.Client, m: Method, reqs: object[], o: CallOptions = {}): Promise<CallResult<T>> {
  const call = client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, toMetadata(o.metadata), callOptions(o));
  const done = collect<T>(call);
  for (const r of reqs) call.write(r);
  call.end();
  return done;
}

/** Reads a response stream to its status. */
export function collect<T>(call: grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>): Promise<CallResult<T>> {
  return new Promise((resolve, reject) => {
    const responses: T[] = [];
    let headers = new grpc.Metadata();
    call.on('metadata', (md: grpc.Metadata) => (headers = md));
    call.on('data', (d: T) => responses.push(d));
    call.on('error', (err: grpc.ServiceError) => reject(Object.assign(err, { responses })));
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) resolve({ responses, headers, trailers: s.metadata });
    });
  });
}

/** Resolves with the CallError of a call expected to fail (rejects if it succeeds). */
export async function callError(p: Promise<unknown>): Promise<CallError & { responses?: unknown[] }> {
  try {
    await p;
  } catch (err) {
    return err as CallError;
  }
  throw new Error('the call succeeded; a failure was expected');
}

// ---------------------------------------------------------------------------
// Raw HTTP/2: frames, a server and a client

/** One length-prefixed gRPC message (uncompressed). */
export function grpcFrame(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/** Splits a body into its length-prefixed gRPC messages (the rest, an incomplete one, is dropped). */
export function grpcMessages(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i + 5 <= body.length) {
    const len = body.readUInt32BE(i + 1);
    if (i + 5 + len > body.length) break;
    out.push(body.subarray(i + 5, i + 5 + len));
    i += 5 + len;
  }
  return out;
}

export interface RawServer {
  readonly port: number;
  readonly address: string;
  /** Streams received, in order (headers as received). */
  readonly streams: { headers: http2.IncomingHttpHeaders; stream: http2.ServerHttp2Stream; rstCode: number | undefined; closed: boolean }[];
  close(): Promise<void>;
}

/** A bare node:http2 (h2c) server on 127.0.0.1:0: `handler` answers each stream however a test needs. */
export async function startRawGrpcServer(handler: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void): Promise<RawServer> {
  const streams: RawServer['streams'] = [];
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const rec = { headers, stream, rstCode: undefined as number | undefined, closed: false };
    streams.push(rec);
    stream.on('error', () => undefined);
    stream.on('close', () => {
      rec.closed = true;
      rec.rstCode = stream.rstCode;
    });
    handler(stream, headers);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    streams,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface RawCall {
  stream: http2.ClientHttp2Stream;
  /** Resolves when the stream closes: the head, the trailers (or the head of a Trailers-Only response), the messages and the RST code. */
  done: Promise<RawCallResult>;
}

export interface RawCallResult {
  headers: http2.IncomingHttpHeaders;
  /** Trailers, or the head of a Trailers-Only response (`trailersOnly`). */
  trailers: http2.IncomingHttpHeaders;
  trailersOnly: boolean;
  messages: Buffer[];
  rstCode: number;
  /** ms from the request to the close. */
  elapsedMs: number;
}

/**
 * A gRPC call over a raw HTTP/2 session: sends the head (with `headers`
 * added, e.g. grpc-timeout that this client does not enforce) and
 * `messages`, and half-closes unless `end` is false.
 */
export function rawGrpcCall(session: http2.ClientHttp2Session, path: string, messages: Buffer[], headers: Record<string, string> = {}, end = true): RawCall {
  const started = Date.now();
  const stream = session.request({
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
    ...headers,
  });
  stream.on('error', () => undefined);
  const done = new Promise<RawCallResult>((resolve) => {
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    let trailersOnly = false;
    const chunks: Buffer[] = [];
    stream.on('response', (h, flags) => {
      head = h;
      if ((flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0) {
        trailersOnly = true;
        trailers = h;
      }
    });
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('close', () =>
      resolve({ headers: head, trailers, trailersOnly, messages: grpcMessages(Buffer.concat(chunks)), rstCode: stream.rstCode ?? 0, elapsedMs: Date.now() - started }),
    );
  });
  for (const m of messages) stream.write(grpcFrame(m));
  if (end) stream.end();
  return { stream, done };
}

/** Serializes an EchoRequest / HelloRequest (or any request of `m`) for a raw call. */
export function encodeRequest(m: Method, value: object): Buffer {
  return m.requestSerialize(value);
}

/** Decodes a response message of `m` from a raw call. */
export function decodeResponse<T = { message: string }>(m: Method, body: Buffer): T {
  return m.responseDeserialize(body) as T;
}
