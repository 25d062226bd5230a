import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logLines } from '../helpers/log-file.js';
import { startGateway, simpleConfig } from '../helpers/gateway.js';
import { startTcpServer } from '../helpers/tcp.js';
import { openFds, fdsSettle } from '../helpers/fds.js';
import { waitFor } from '../helpers/wait.js';

/**
 * An upstream whose response framing is broken is answered 502
 * UPSTREAM_PROTOCOL_ERROR when no byte of its response reached the
 * client yet; once bytes went downstream the downstream response is
 * aborted (never a short body that looks complete). Either way the access
 * log says the real error, not 200.
 */

/** Raw responses that break HTTP/1.1 framing before any body byte is valid. */
const BROKEN_BEFORE_BODY: Record<string, string> = {
  'bad chunk size': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
  'chunk size then EOF': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n',
  'head then EOF, chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
  'content-length longer than the body (nothing sent)': 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n',
  'contradicting Content-Length': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
  'Content-Length and chunked': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'invalid header name': 'HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 2\r\n\r\nok',
  'control byte in a header value': 'HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 2\r\n\r\nok',
  'bad status line': 'HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok',
};

/** Raw responses whose first body bytes are valid, then broken: the client has bytes already. */
const BROKEN_AFTER_BODY: Record<string, string> = {
  'bad chunk size after a chunk': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n',
  'missing CRLF after chunk data': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n',
  'EOF in the middle of a chunk': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhello',
  'content-length longer than the body': 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello',
};

interface Outcome {
  status: number;
  /** The client saw its response cut ('aborted'/'error' on the response, or a reset). */
  cut: boolean;
  body: string;
}

function get(url: string, path: string): Promise<Outcome> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const req = http.request({ host: u.hostname, port: u.port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let cut = false;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('aborted', () => (cut = true));
      res.on('error', () => (cut = true));
      res.on('close', () => resolve({ status: res.statusCode!, cut: cut || !res.complete, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', () => resolve({ status: 0, cut: true, body: '' }));
    req.end();
  });
}


/** A raw upstream that answers request `/N` with the bytes of case N, then closes. */
function scriptedUpstream(cases: [string, string][]): ReturnType<typeof startTcpServer> {
  return startTcpServer((socket) => {
    let head = '';
    socket.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const n = Number(/^GET \/(\d+)/.exec(head)![1]);
      socket.end(cases[n]![1], 'latin1');
    });
  });
}

for (const [path, upstreamConfig] of [
  ['plain path', {}],
  ['guarded path (circuit breaker and retries)', { circuitBreaker: {}, retries: { attempts: 2 } }],
] as const) describe(`broken upstream framing, ${path}`, () => {
  test('before any body byte: 502 UPSTREAM_PROTOCOL_ERROR, logged as such', async (t) => {
    const baseline = openFds();
    const cases = Object.entries(BROKEN_BEFORE_BODY);
    const up = await scriptedUpstream(cases);
    const log = join(mkdtempSync(join(tmpdir(), 'portico-framing-')), 'access.log');
    const gw = await startGateway(simpleConfig([up.address], {}, upstreamConfig, { accessLog: { path: log } }));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    for (let n = 0; n < cases.length; n++) {
      const r = await get(gw.url(), `/${n}`);
      assert.equal(r.status, 502, `${cases[n]![0]}: status`);
      assert.equal(r.cut, false, `${cases[n]![0]}: a complete 502 answer`);
      assert.equal((JSON.parse(r.body) as { code: string }).code, 'UPSTREAM_PROTOCOL_ERROR', `${cases[n]![0]}: code`);
    }
    const lines = await waitFor(() => {
      const l = logLines(log);
      return l.length === cases.length ? l : undefined;
    }, 'an access-log line per case', 5000);
    for (const l of lines) {
      const n = Number((l.path as string).slice(1));
      assert.equal(l.status, 502, `${cases[n]![0]}: logged status`);
      assert.equal(l.error, 'UPSTREAM_PROTOCOL_ERROR', `${cases[n]![0]}: logged error`);
    }
    await gw.close();
    await up.close();
    await fdsSettle(baseline, 3);
  });

  test('after body bytes went downstream: the response is cut, and the log says the error', async (t) => {
    const baseline = openFds();
    const cases = Object.entries(BROKEN_AFTER_BODY);
    const up = await scriptedUpstream(cases);
    const log = join(mkdtempSync(join(tmpdir(), 'portico-framing-')), 'access.log');
    const gw = await startGateway(simpleConfig([up.address], {}, upstreamConfig, { accessLog: { path: log } }));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    for (let n = 0; n < cases.length; n++) {
      const r = await get(gw.url(), `/${n}`);
      assert.equal(r.cut, true, `${cases[n]![0]}: the client must see its response cut, got ${r.status} ${JSON.stringify(r.body)}`);
    }
    const lines = await waitFor(() => {
      const l = logLines(log);
      return l.length === cases.length ? l : undefined;
    }, 'an access-log line per case', 5000);
    for (const l of lines) {
      const n = Number((l.path as string).slice(1));
      assert.equal(l.status, 502, `${cases[n]![0]}: logged status`);
      assert.equal(l.error, 'UPSTREAM_PROTOCOL_ERROR', `${cases[n]![0]}: logged error`);
    }
    await gw.close();
    await up.close();
    await fdsSettle(baseline, 3);
  });
});

