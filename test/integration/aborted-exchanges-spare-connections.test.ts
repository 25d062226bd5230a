import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startHoldingUpstream } from '../helpers/holding-upstream.js';
import { startGateway, simpleConfig } from '../helpers/gateway.js';
import { openFds, fdsSettle } from '../helpers/fds.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A burst of downstream clients leaving while their requests are proxied
 * to an HTTP/1.1 upstream leaves no upstream connection behind that never
 * carries a request. undici 7 puts a request aborted through its dispatch
 * `abort` back as pending and opens a fresh connection for it before it
 * notices the abort; nothing reaps that connection until the upstream
 * itself gives up on it (node:http: its 60 s headers timeout). The
 * upstream here counts the connections it has open and which of them ever
 * carried a request.
 */

const ROUNDS = 50;
const UPSTREAM_TIMEOUTS = { connect: '2s', response: '30s', idle: '60s' };
/** How long a spare connection gets to show up after the aborted exchanges ended: undici opens it at once. */
const SETTLE_MS = 1000;

type Phase = 'upload' | 'head' | 'upgrade';

/** Mid-upload: a head and 500 of 100000 body bytes. Waiting for the head: a whole body, or none, by turns; or a WebSocket handshake. */
function requestText(phase: Phase, i: number): string {
  if (phase === 'upgrade') {
    return (
      `GET /ws/${i} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'
    );
  }
  if (phase === 'upload') return `POST /upload/${i} HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(500)}`;
  return i % 2 === 0 ? `POST /wait/${i} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello` : `GET /wait/${i} HTTP/1.1\r\nHost: a\r\n\r\n`;
}

async function connected(port: number): Promise<net.Socket> {
  const s = net.connect({ port, host: '127.0.0.1' });
  s.on('error', () => undefined);
  await new Promise<void>((r) => s.once('connect', () => r()));
  return s;
}

const PATHS: { name: string; upstream: Record<string, unknown>; phases: Phase[] }[] = [
  { name: 'plain path', upstream: {}, phases: ['upload', 'head', 'upgrade'] },
  {
    name: 'guarded path',
    upstream: { circuitBreaker: { volumeThreshold: 100000 }, retries: { attempts: 2, retryNonIdempotent: true, retryBufferBytes: 100 } },
    phases: ['upload', 'head'],
  },
];

const PHASE_NAMES: Record<Phase, string> = {
  upload: 'mid-upload',
  head: 'waiting for the response head',
  upgrade: 'WebSocket handshake waiting for its answer',
};

describe('aborted exchanges leave no spare upstream connection', () => {
  for (const p of PATHS) {
    for (const phase of p.phases) {
      test(`${p.name}, ${PHASE_NAMES[phase]}: ${ROUNDS} concurrent aborts`, async (t) => {
        const up = await startHoldingUpstream();
        const gw = await startGateway(simpleConfig([up.address], {}, { timeouts: UPSTREAM_TIMEOUTS, ...p.upstream }));
        t.after(async () => {
          await gw.close();
          await up.close();
        });
        assert.equal(await (await fetch(`${gw.url()}/warm`)).text(), 'ok');
        const baseline = openFds();
        const usedBefore = up.open();

        const port = Number(new URL(gw.url()).port);
        const clients = await Promise.all(Array.from({ length: ROUNDS }, () => connected(port)));
        clients.forEach((s, i) => s.write(requestText(phase, i)));
        await waitFor(() => up.arrived() === ROUNDS || undefined, `all ${ROUNDS} requests to reach the upstream`);
        // Waiting for the head means the upstream has read every body: no byte of the request is left to send.
        if (phase !== 'upload') await waitFor(() => up.bodiesRead() === ROUNDS || undefined, 'every body read');
        for (const s of clients) s.destroy();
        await waitFor(() => up.ended() === ROUNDS || undefined, `the upstream to see ${ROUNDS} exchanges end`);
        await new Promise((r) => setTimeout(r, SETTLE_MS));

        const spare = up.neverUsed();
        t.diagnostic(`upstream connections open after the aborts: ${up.open()}, never used: ${spare}`);
        assert.ok(spare <= 1, `${spare} upstream connections open that never carried a request (${up.open()} open, ${usedBefore} after the warm-up)`);
        const target = gw.gateway.current.upstreams.get('up')!.targets[0]!;
        await waitFor(() => target.inflight === 0 || undefined, 'no exchange left in flight');
        await fdsSettle(baseline, 2, 5000);
      });
    }
  }
});
