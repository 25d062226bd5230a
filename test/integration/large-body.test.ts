import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCli } from '../helpers/cli.js';
import { startUpstream } from '../helpers/upstream.js';

const GiB = 1024 ** 3;
const CHUNK = Buffer.alloc(1024 * 1024, 120);

/** Peak resident memory of a process (VmHWM), in MiB. */
function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * 1 GiB up and 1 GiB down through a gateway process: both bodies are
 * streamed with backpressure, so the gateway's peak memory stays far below
 * the body size.
 */
test('1 GiB upload and download pass through in constant memory', async (t) => {
  const up = await startUpstream(
    (req, res) => {
      if (req.method === 'POST') {
        let n = 0;
        req.on('data', (c: Buffer) => (n += c.length));
        req.on('end', () => res.end(String(n)));
        return;
      }
      res.writeHead(200, { 'content-length': String(GiB) });
      let sent = 0;
      const pump = () => {
        while (sent < GiB) {
          sent += CHUNK.length;
          if (!res.write(CHUNK)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    },
    { collectBody: false },
  );
  const dir = mkdtempSync(join(tmpdir(), 'portico-big-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    `listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", accessLog: false }]
upstreams: [{ name: up, targets: [{ address: "${up.address}" }] }]
routes: [{ name: r, listener: web, upstream: up }]
`,
  );
  const gw = await startCli(file);
  t.after(async () => {
    await gw.stop();
    await up.close();
  });
  const u = new URL(gw.urls.web!);
  const baseline = peakRssMiB(gw.child.pid!);

  // Upload: chunked, 1 GiB.
  const uploaded = await new Promise<string>((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path: '/up', agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    let sent = 0;
    const pump = () => {
      while (sent < GiB) {
        sent += CHUNK.length;
        if (!req.write(CHUNK)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  assert.equal(Number(uploaded), GiB);

  // Download: 1 GiB with Content-Length.
  const downloaded = await new Promise<number>((resolve, reject) => {
    http
      .get({ host: u.hostname, port: u.port, path: '/down', agent: false }, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => (n += c.length));
        res.on('end', () => resolve(n));
        res.on('error', reject);
      })
      .on('error', reject);
  });
  assert.equal(downloaded, GiB);

  const peak = peakRssMiB(gw.child.pid!);
  t.diagnostic(`gateway peak RSS ${peak.toFixed(0)} MiB (baseline ${baseline.toFixed(0)} MiB) for 2 GiB proxied`);
  assert.ok(peak < baseline + 150, `peak RSS ${peak} MiB should stay within 150 MiB of the ${baseline} MiB baseline`);
});
