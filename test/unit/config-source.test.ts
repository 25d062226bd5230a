// The file config source as a ConfigSource (src/sources/config-source.ts):
// it hands valid documents to its subscriber and applies nothing itself.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import type { ApplyOutcome, ConfigDocument, ConfigSource } from '../../src/sources/config-source.js';
import { FileSource } from '../../src/sources/file.js';

const dir = fs.mkdtempSync(join(os.tmpdir(), 'portico-config-source-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function yaml(port: number): string {
  return [
    'listeners:',
    `  - { name: web, protocol: http, listen: "127.0.0.1:${port}", accessLog: false }`,
    'routes:',
    '  - { name: r, listener: web, respond: { status: 204 } }',
    '',
  ].join('\n');
}

/** A source on a fresh file, its log lines, and every document its subscriber got. */
function source(text: string, outcome: ApplyOutcome = { ok: true }) {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(file, text);
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const s = new FileSource(file, pino({ level: 'info' }, sink));
  const got: ConfigDocument[] = [];
  s.subscribe(async (doc) => {
    got.push(doc);
    return outcome;
  });
  return { file, s: s as ConfigSource, lines, got };
}

describe('FileSource as a ConfigSource', () => {
  it('hands each valid document to its subscriber with origin, reason and a content revision', async () => {
    const { file, s, got } = source(yaml(0));
    assert.equal(await s.reload('SIGHUP'), true);
    assert.equal(await s.reload('SIGHUP'), true);
    fs.writeFileSync(file, yaml(1));
    assert.equal(await s.reload('SIGHUP'), true);
    s.close();
    assert.equal(got.length, 3);
    assert.equal(got[0]!.origin, `file:${file}`);
    assert.equal(got[0]!.reason, 'SIGHUP');
    assert.equal(got[0]!.config.listeners[0]!.name, 'web');
    assert.match(got[0]!.revision, /^[0-9a-f]{16}$/);
    // Same text, same revision; a changed text, a new one.
    assert.equal(got[1]!.revision, got[0]!.revision);
    assert.notEqual(got[2]!.revision, got[0]!.revision);
    assert.equal(got[2]!.config.listeners[0]!.listen.port, 1);
  });

  it('never delivers an invalid document, or one whose files cannot be loaded, and logs why', async () => {
    const bad = source('listeners: [ { name: web, protocol: nope } ]\n');
    assert.equal(await bad.s.reload('SIGHUP'), false);
    assert.equal(bad.got.length, 0);
    assert.equal(bad.lines.at(-1)!.msg, 'config rejected; keeping the running config');

    const missingCert = source(yaml(0).replace('protocol: http,', 'protocol: https, tls: { certificates: [ { cert: /nonexistent/c.pem, key: /nonexistent/k.pem } ] },'));
    assert.equal(await missingCert.s.reload('SIGHUP'), false);
    assert.equal(missingCert.got.length, 0);
    assert.match(JSON.stringify(missingCert.lines.at(-1)!.errors), /listeners\[0\]\.tls/);
    bad.s.close();
    missingCert.s.close();
  });

  it('reports a refusal by the subscriber as not applied, with its reason logged', async () => {
    const { s, got, lines } = source(yaml(0), { ok: false, error: 'bind failed: EADDRINUSE' });
    assert.equal(await s.reload('SIGHUP'), false);
    s.close();
    assert.equal(got.length, 1);
    assert.deepEqual(lines.at(-1)!.errors, ['(apply): bind failed: EADDRINUSE']);
  });

  it('delivers nothing after close', async () => {
    const { s, got } = source(yaml(0));
    s.close();
    // A read already under way when close() is called is dropped too (reload checks `closed` after reading).
    assert.equal(await s.reload('file changed'), false);
    assert.equal(got.length, 0);
  });
});
