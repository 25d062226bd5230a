// The ClientHello reader behind SNI passthrough (src/l4/tls/client-hello.ts):
// real ClientHellos captured from node:tls and the openssl CLI, the same
// hellos fragmented over many records, every truncation, hand-built
// malformed hellos (one per rule of RFC 8446 §4.1.2/§5.1 and RFC 6066 §3),
// and a few thousand mutated inputs that must all give a well-formed verdict.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { parseClientHello, type ClientHelloResult } from '../../src/l4/tls/client-hello.js';

/** Starts a raw TCP server, runs `client(port)`, and returns the first TLS record the client sent (its ClientHello). */
async function capture(client: (port: number) => { close(): void }): Promise<Buffer> {
  let stop: { close(): void } | undefined;
  const server = net.createServer();
  const got = new Promise<Buffer>((resolve, reject) => {
    server.on('connection', (socket) => {
      let buf = Buffer.alloc(0);
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
          socket.destroy();
          resolve(buf.subarray(0, 5 + buf.readUInt16BE(3)));
        }
      });
      socket.on('close', () => reject(new Error(`the client closed after ${buf.length} bytes`)));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    stop = client((server.address() as net.AddressInfo).port);
    return await got;
  } finally {
    stop?.close();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

function nodeHello(options: tls.ConnectionOptions): Promise<Buffer> {
  return capture((port) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...options });
    s.on('error', () => undefined);
    return { close: () => s.destroy() };
  });
}

function opensslHello(args: string[]): Promise<Buffer> {
  return capture((port) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { stdio: ['pipe', 'ignore', 'ignore'] });
    p.on('error', () => undefined);
    return { close: () => p.kill() };
  });
}

/** Record headers and payload of a handshake message split into records of the given sizes (the last one takes the rest). */
function records(message: Buffer, sizes: number[]): Buffer {
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; off < message.length; i++) {
    const n = Math.min(sizes[i] ?? message.length, message.length - off);
    out.push(Buffer.from([22, 3, 1, n >> 8, n & 0xff]), message.subarray(off, off + n));
    off += n;
  }
  return Buffer.concat(out);
}

/** The handshake message(s) carried by a run of records. */
function unwrap(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let off = 0; off < data.length; ) {
    const n = data.readUInt16BE(off + 3);
    parts.push(data.subarray(off + 5, off + 5 + n));
    off += 5 + n;
  }
  return Buffer.concat(parts);
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const vec16 = (b: Buffer) => Buffer.concat([u16(b.length), b]);
const vec8 = (b: Buffer) => Buffer.concat([Buffer.from([b.length]), b]);

interface HelloParts {
  version?: Buffer;
  sessionId?: Buffer;
  suites?: Buffer;
  compression?: Buffer;
  /** [type, data] pairs; null = no extensions block at all (a TLS 1.2 hello may leave it out). */
  extensions?: [number, Buffer][] | null;
  /** Raw bytes appended after the extensions block. */
  trailer?: Buffer;
}

/** A ClientHello handshake message (type 1, 3-byte length) from parts, defaulting to a minimal valid one. */
function helloMessage(p: HelloParts = {}): Buffer {
  const exts = p.extensions === undefined ? [] : p.extensions;
  const body = Buffer.concat([
    p.version ?? Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    vec8(p.sessionId ?? Buffer.alloc(0)),
    vec16(p.suites ?? Buffer.from([0x13, 0x01])),
    vec8(p.compression ?? Buffer.from([0])),
    exts === null ? Buffer.alloc(0) : vec16(Buffer.concat(exts.map(([t, d]) => Buffer.concat([u16(t), vec16(d)])))),
    p.trailer ?? Buffer.alloc(0),
  ]);
  return Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
}

/** server_name extension data with these (name_type, name) entries. */
function sniData(...names: [number, string][]): Buffer {
  return vec16(Buffer.concat(names.map(([t, n]) => Buffer.concat([Buffer.from([t]), vec16(Buffer.from(n, 'latin1'))]))));
}

const hello = (p: HelloParts = {}) => records(helloMessage(p), []);

function sniOf(r: ClientHelloResult): string | null {
  assert.equal(r.status, 'ok', JSON.stringify(r));
  return r.status === 'ok' ? r.hello.serverName : null;
}

function failure(r: ClientHelloResult): string {
  assert.equal(r.status, 'invalid', JSON.stringify(r));
  return r.status === 'invalid' ? r.reason : '';
}

describe('ClientHello: real hellos', () => {
  const real: Record<string, Buffer> = {};
  before(async () => {
    real.node13 = await nodeHello({ servername: 'db.example.com', ALPNProtocols: ['h2', 'http/1.1'] });
    real.node12 = await nodeHello({ servername: 'Legacy.Example.COM', maxVersion: 'TLSv1.2' });
    real.nodeNoSni = await nodeHello({}); // an IP host: node:tls sends no SNI (RFC 6066 §3)
    real.openssl = await opensslHello(['-servername', 'cli.example.net']);
  });

  it('reads the SNI of node:tls (TLS 1.3 and 1.2) and openssl s_client hellos', () => {
    assert.equal(sniOf(parseClientHello(real.node13!)), 'db.example.com');
    assert.equal(sniOf(parseClientHello(real.node12!)), 'legacy.example.com', 'lower-cased');
    assert.equal(sniOf(parseClientHello(real.nodeNoSni!)), null);
    assert.equal(sniOf(parseClientHello(real.openssl!)), 'cli.example.net');
  });

  it('reports the length of the records carrying the hello, and ignores what follows', () => {
    const data = Buffer.concat([real.node13!, Buffer.from([23, 3, 3, 0, 2, 0xaa, 0xbb])]);
    const r = parseClientHello(data);
    assert.equal(r.status, 'ok');
    if (r.status === 'ok') assert.equal(r.hello.length, real.node13!.length);
  });

  it('asks for more on every truncation, never past the hello, and never throws', () => {
    for (const name of Object.keys(real)) {
      const full = real[name]!;
      for (let n = 0; n < full.length; n++) {
        const r = parseClientHello(full.subarray(0, n));
        assert.equal(r.status, 'partial', `${name} cut at ${n}: ${JSON.stringify(r)}`);
        if (r.status === 'partial') assert.ok(r.need > n && r.need <= full.length, `${name} cut at ${n}: need ${r.need}`);
      }
    }
  });

  it('reads a hello fragmented over many records, down to one byte per record', () => {
    const message = unwrap(real.node13!);
    for (const sizes of [[1], [1, 1, 1, 1, 1], [3, 1, 200], [100, 100, 100], Array(message.length).fill(1) as number[]]) {
      const data = records(message, sizes);
      const r = parseClientHello(data);
      assert.equal(sniOf(r), 'db.example.com', `record sizes ${sizes.slice(0, 5).join(',')}`);
      if (r.status === 'ok') assert.equal(r.hello.length, data.length);
    }
    // Random fragmentations.
    for (let i = 0; i < 200; i++) {
      const sizes = Array.from({ length: 50 }, () => randomInt(1, 40));
      assert.equal(sniOf(parseClientHello(records(message, sizes))), 'db.example.com');
    }
  });

  it('fed a byte at a time, settles exactly when the last record is complete', () => {
    const data = records(unwrap(real.node12!), [7, 30, 2]);
    let need = 1;
    for (let n = 1; n <= data.length; n++) {
      if (n < need) continue;
      const r = parseClientHello(data.subarray(0, n));
      if (n < data.length) {
        assert.equal(r.status, 'partial');
        if (r.status === 'partial') need = r.need;
      } else assert.equal(sniOf(r), 'legacy.example.com');
    }
  });

  it('refuses a hello bigger than maxBytes as soon as a length says so', () => {
    const full = real.node13!;
    assert.equal(failure(parseClientHello(full, full.length - 1)), 'too-large');
    assert.equal(failure(parseClientHello(full.subarray(0, 5), 100)), 'too-large', 'a record header is enough to know');
    const split = records(unwrap(full), [4]);
    assert.equal(failure(parseClientHello(split.subarray(0, 9), 100)), 'too-large', 'so is the handshake header, in a record of its own');
    assert.equal(sniOf(parseClientHello(full, full.length)), 'db.example.com');
  });

  it('gives a well-formed verdict for thousands of mutated hellos (fuzz)', () => {
    const seeds = Object.values(real).concat([records(unwrap(real.node13!), [5, 60, 3])]);
    const counts = { ok: 0, partial: 0, invalid: 0 };
    for (let i = 0; i < 4000; i++) {
      const seed = seeds[i % seeds.length]!;
      const data = Buffer.from(seed);
      const kind = randomInt(4);
      let input: Buffer = data;
      if (kind === 0) {
        for (let k = randomInt(1, 4); k > 0; k--) data[randomInt(data.length)] = randomInt(256);
      } else if (kind === 1) {
        // A length field: the record's, the handshake's, or a random pair of bytes set to an extreme.
        const at = [3, 6, 7, 8][randomInt(4)]!;
        data[randomInt(2) ? at : randomInt(data.length - 1)] = randomInt(2) ? 0xff : 0;
      } else if (kind === 2) {
        input = data.subarray(0, randomInt(data.length));
      } else {
        const at = randomInt(data.length);
        input = Buffer.concat([data.subarray(0, at), Buffer.from([randomInt(256), randomInt(256)]), data.subarray(at)]);
      }
      let r: ClientHelloResult;
      try {
        r = parseClientHello(input);
      } catch (err) {
        assert.fail(`threw on input ${input.toString('hex')}: ${String(err)}`);
      }
      counts[r.status]++;
      if (r.status === 'partial') assert.ok(r.need > input.length && r.need <= 16_384, `need ${r.need} for ${input.length} bytes`);
      if (r.status === 'ok') {
        assert.ok(r.hello.length <= input.length);
        assert.ok(r.hello.serverName === null || /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(r.hello.serverName), String(r.hello.serverName));
      }
      if (r.status === 'invalid') assert.ok(['not-tls', 'malformed', 'too-large'].includes(r.reason) && r.detail.length > 0);
    }
    // The mutations reach every verdict, so the loop exercises more than the first byte check.
    assert.ok(counts.ok > 0 && counts.partial > 0 && counts.invalid > 0, JSON.stringify(counts));
  });
});

describe('ClientHello: hand-built hellos', () => {
  it('reads the SNI of a minimal hello and of one without any extensions block', () => {
    assert.equal(sniOf(parseClientHello(hello({ extensions: [[0, sniData([0, 'a.example'])]] }))), 'a.example');
    assert.equal(sniOf(parseClientHello(hello({ extensions: null }))), null, 'TLS 1.2 may leave extensions out (RFC 5246 §7.4.1.2)');
    assert.equal(sniOf(parseClientHello(hello({ extensions: [[16, vec16(vec8(Buffer.from('h2')))]] }))), null, 'extensions, but no server_name');
  });

  it('normalizes the host name: lower case, no trailing dot', () => {
    assert.equal(sniOf(parseClientHello(hello({ extensions: [[0, sniData([0, 'DB.Example.COM.'])]] }))), 'db.example.com');
    assert.equal(sniOf(parseClientHello(hello({ extensions: [[0, sniData([0, 'svc_1.internal'])]] }))), 'svc_1.internal');
  });

  it('refuses bytes that are not TLS from the first byte or two', () => {
    assert.equal(failure(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n'))), 'not-tls');
    assert.equal(failure(parseClientHello(Buffer.from('G'))), 'not-tls');
    assert.equal(failure(parseClientHello(Buffer.from([0x16, 0x02]))), 'not-tls', 'record version 2.x');
    assert.equal(failure(parseClientHello(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01]))), 'not-tls', 'an SSL 2.0-style hello');
    assert.equal(failure(parseClientHello(Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'))), 'not-tls');
    assert.equal(parseClientHello(Buffer.alloc(0)).status, 'partial');
  });

  it('refuses the record-layer violations of RFC 8446 §5.1', () => {
    const message = helloMessage({ extensions: [[0, sniData([0, 'a.example'])]] });
    const split = records(message, [10]);
    const alert = Buffer.from(split);
    alert[15] = 21; // the second record is an alert: interleaved with the hello
    assert.equal(failure(parseClientHello(alert)), 'malformed');
    assert.equal(failure(parseClientHello(Buffer.concat([Buffer.from([22, 3, 1, 0, 0]), records(message, [])]))), 'malformed', 'a zero-length record');
    assert.equal(failure(parseClientHello(Buffer.from([22, 3, 1, 0x40, 0x01]))), 'malformed', 'a record over 2^14 bytes');
    assert.equal(failure(parseClientHello(records(Buffer.concat([Buffer.from([2]), message.subarray(1)]), []))), 'malformed', 'a ServerHello, not a ClientHello');
  });

  it('refuses hellos whose fields break RFC 8446 §4.1.2', () => {
    const sni: [number, Buffer][] = [[0, sniData([0, 'a.example'])]];
    assert.equal(failure(parseClientHello(hello({ version: Buffer.from([2, 0]), extensions: sni }))), 'malformed', 'legacy_version 2.0');
    assert.equal(failure(parseClientHello(hello({ sessionId: Buffer.alloc(33), extensions: sni }))), 'malformed', 'session id > 32');
    assert.equal(failure(parseClientHello(hello({ suites: Buffer.alloc(0), extensions: sni }))), 'malformed', 'no cipher suite');
    assert.equal(failure(parseClientHello(hello({ suites: Buffer.alloc(3), extensions: sni }))), 'malformed', 'odd cipher_suites');
    assert.equal(failure(parseClientHello(hello({ compression: Buffer.alloc(0), extensions: sni }))), 'malformed', 'no compression method');
    assert.equal(failure(parseClientHello(hello({ extensions: sni, trailer: Buffer.from([0]) }))), 'malformed', 'bytes after the extensions');
    assert.equal(failure(parseClientHello(hello({ extensions: [sni[0]!, [16, Buffer.alloc(0)], sni[0]!] }))), 'malformed', 'an extension twice (§4.2)');
    // An extension whose length runs past the extensions block.
    const message = helloMessage({ extensions: sni });
    message[message.length - sniData([0, 'a.example']).length - 1] += 1;
    assert.equal(failure(parseClientHello(records(message, []))), 'malformed');
  });

  it('refuses server_name extensions that break RFC 6066 §3', () => {
    const withSni = (data: Buffer) => parseClientHello(hello({ extensions: [[0, data]] }));
    assert.equal(failure(withSni(sniData([0, 'a.example'], [0, 'b.example']))), 'malformed', 'two host names');
    assert.equal(failure(withSni(sniData([1, 'a.example']))), 'malformed', 'unknown name_type');
    assert.equal(failure(withSni(sniData())), 'malformed', 'empty list');
    assert.equal(failure(withSni(sniData([0, '']))), 'malformed', 'empty name');
    assert.equal(failure(withSni(sniData([0, 'a'.repeat(256)]))), 'malformed', 'a name over 255 bytes');
    assert.equal(failure(withSni(sniData([0, 'a\0.example']))), 'malformed', 'a NUL in the name');
    assert.equal(failure(withSni(sniData([0, 'a..example']))), 'malformed', 'an empty label');
    assert.equal(failure(withSni(Buffer.concat([sniData([0, 'a.example']), Buffer.from([0])]))), 'malformed', 'bytes after the list');
  });
});
