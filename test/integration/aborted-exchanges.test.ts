import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logLines } from '../helpers/log-file.js';
import { startHoldingUpstream, type HoldingUpstream } from '../helpers/holding-upstream.js';
import { startGateway, simpleConfig } from '../helpers/gateway.js';
import { openFds, fdsSettle } from '../helpers/fds.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A downstream client that goes away in the middle of its request body
 * (or that the listener's `timeouts.request` closes) ends the upstream
 * exchange at once: the upstream sees its request end, the pooled
 * connection is released, this process's descriptors come back to where
 * they were, and each exchange is counted and logged as 499
 * DOWNSTREAM_ABORTED. Every wait here is far below the upstream's 30 s
 * response timeout, the only other thing that would end the exchange.
 */

const ROUNDS = 100;
/** The upstream waits this long for a response head: far beyond every wait in this file. */
const UPSTREAM_TIMEOUTS = { connect: '2s', response: '30s', idle: '60s' };

const BODY_PART = 'x'.repeat(500);

/** HTTP/1.1: a request head and part of its body (Content-Length or chunked by turns). */
function uploadHead(i: number): string {
  return i % 2 === 0
    ? `POST /upload/${i} HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n${BODY_PART}`
    : `POST /upload/${i} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1f4\r\n${BODY_PART}\r\n`;
}

async function connected(port: number): Promise<net.Socket> {
  const s = net.connect({ port, host: '127.0.0.1' });
  s.on('error', () => undefined);
  await new Promise<void>((r) => s.once('connect', () => r()));
  return s;
}

/** Waits until the upstream has one request more than `before`. */
function reached(up: HoldingUpstream, before: number, i: number): Promise<true> {
  return waitFor(() => up.arrived() > before || undefined, `upstream to receive request ${i}`, 5000, 5);
}

type Abort = (gwUrl: string, up: HoldingUpstream, i: number) => Promise<void>;

/** HTTP/1.1 downstream: the socket is destroyed once the upstream has the request. */
const abortHttp1: Abort = async (url, up, i) => {
  const before = up.arrived();
  const s = await connected(Number(new URL(url).port));
  s.write(uploadHead(i));
  await reached(up, before, i);
  s.destroy();
};

/** HTTP/2 downstream (prior knowledge): the stream is reset (CANCEL), or the whole connection dropped, by turns. */
const abortHttp2: Abort = async (url, up, i) => {
  const before = up.arrived();
  const session = http2.connect(url);
  session.on('error', () => undefined);
  const stream = session.request({ ':method': 'POST', ':path': `/upload/${i}`, ...(i % 2 === 0 ? { 'content-length': '100000' } : {}) });
  stream.on('error', () => undefined);
  stream.write(BODY_PART);
  await reached(up, before, i);
  if (i % 2 === 0) {
    session.destroy();
  } else {
    stream.close(http2.constants.NGHTTP2_CANCEL);
    session.close();
  }
};

/** A WebSocket client that leaves while the upstream's handshake hangs. */
const abortUpgrade: Abort = async (url, up, i) => {
  const before = up.arrived();
  const s = await connected(Number(new URL(url).port));
  s.write(
    `GET /upload/${i} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  await reached(up, before, i);
  s.destroy();
};

interface Case {
  name: string;
  h2c?: boolean;
  upstream?: Record<string, unknown>;
  abort: Abort;
}

const CASES: Case[] = [
  { name: 'plain path: HTTP/1.1 downstream and upstream', abort: abortHttp1 },
  {
    name: 'guarded path: circuit breaker and retries (bodies streamed past retryBufferBytes)',
    upstream: { circuitBreaker: { volumeThreshold: 100000 }, retries: { attempts: 2, retryNonIdempotent: true, retryBufferBytes: 100 } },
    abort: abortHttp1,
  },
  { name: 'HTTP/2 downstream', abort: abortHttp2 },
  { name: 'h2c upstream', h2c: true, abort: abortHttp1 },
  { name: 'HTTP/2 downstream, h2c upstream, guarded', h2c: true, upstream: { circuitBreaker: { volumeThreshold: 100000 } }, abort: abortHttp2 },
  { name: 'WebSocket client leaving while the upstream handshake hangs', abort: abortUpgrade },
];

describe('aborted uploads end the upstream exchange at once', () => {
  for (const c of CASES) {
    test(c.name, async (t) => {
      const up = await startHoldingUpstream(c.h2c);
      const log = join(mkdtempSync(join(tmpdir(), 'portico-aborted-')), 'access.log');
      const gw = await startGateway(
        simpleConfig([up.address], {}, { protocol: c.h2c ? 'h2c' : 'http1', timeouts: UPSTREAM_TIMEOUTS, ...c.upstream }, { accessLog: { path: log } }),
      );
      t.after(async () => {
        await gw.close();
        await up.close();
      });
      // Warm the pool (and open the access log) so the baseline has what a served request leaves open.
      const warm = await fetch(`${gw.url()}/warm`);
      assert.equal(await warm.text(), 'ok');
      await waitFor(() => logLines(log).length === 1 || undefined, 'the warm-up log line');
      const baseline = openFds();

      for (let i = 0; i < ROUNDS; i++) await c.abort(gw.url(), up, i);
      assert.equal(up.arrived(), ROUNDS);
      await waitFor(() => up.ended() === ROUNDS || undefined, `the upstream to see ${ROUNDS} exchanges end`, 10_000);
      const lines = await waitFor(() => {
        const l = logLines(log).filter((x) => (x.path as string).startsWith('/upload/'));
        return l.length === ROUNDS ? l : undefined;
      }, 'one access-log line per aborted exchange', 10_000);
      for (const l of lines) {
        assert.equal(l.status, 499, JSON.stringify(l));
        assert.equal(l.error, 'DOWNSTREAM_ABORTED', JSON.stringify(l));
      }
      const route = (await gw.gateway.statsReport()).route.r as { requests: number; statusClasses: number[] };
      assert.equal(route.statusClasses[4], ROUNDS, '499s are counted');
      const target = gw.gateway.current.upstreams.get('up')!.targets[0]!;
      await waitFor(() => target.inflight === 0 || undefined, 'no exchange left in flight');
      await fdsSettle(baseline, 2, 10_000);
    });
  }

  test("the listener's timeouts.request closes a stalled upload and ends its upstream exchange", async (t) => {
    const up = await startHoldingUpstream();
    const log = join(mkdtempSync(join(tmpdir(), 'portico-aborted-')), 'access.log');
    const gw = await startGateway(
      simpleConfig([up.address], {}, { timeouts: { ...UPSTREAM_TIMEOUTS, idle: '1s' } }, { accessLog: { path: log }, timeouts: { headers: '1s', request: '1s' } }),
    );
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    await (await fetch(`${gw.url()}/warm`)).text();
    await waitFor(() => logLines(log).length === 1 || undefined, 'the warm-up log line');
    const baseline = openFds();
    const n = 20;
    const port = Number(new URL(gw.url()).port);
    // The clients stay connected and silent: only the listener's request timeout ends them (with a 408 they read).
    const clients = await Promise.all(Array.from({ length: n }, () => connected(port)));
    const answers = clients.map(() => '');
    clients.forEach((s, i) => {
      s.on('data', (d: Buffer) => (answers[i] += d.toString('latin1')));
      s.write(uploadHead(i));
    });
    await waitFor(() => up.arrived() === n || undefined, 'every upload to reach the upstream');
    await waitFor(() => up.ended() === n || undefined, 'the upstream to see every exchange end', 10_000);
    await waitFor(() => clients.every((s) => s.destroyed || s.readableEnded) || undefined, 'the gateway to close every client');
    for (const s of clients) s.destroy();
    const lines = await waitFor(() => {
      const l = logLines(log).filter((x) => (x.path as string).startsWith('/upload/'));
      return l.length === n ? l : undefined;
    }, 'one access-log line per closed upload', 10_000);
    for (const l of lines) {
      assert.equal(l.status, 408, JSON.stringify(l));
      assert.equal(l.error, 'REQUEST_TIMEOUT', JSON.stringify(l));
    }
    for (const a of answers) assert.match(a, /^HTTP\/1\.1 408 /);
    // An aborted request leaves no spare upstream connection behind (h1-connection.ts; aborted-exchanges-spare-connections.test.ts).
    await fdsSettle(baseline, 2, 10_000);
  });
});

