import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import type { SealKdf } from '../../src/l4/sealed/codec.js';

/** The `openssl enc` flags of each v1 kdf. */
export const OPENSSL_KDF_FLAGS: Record<SealKdf, string[]> = { md5: ['-md', 'md5'], sha256: ['-md', 'sha256'], pbkdf2: ['-pbkdf2'] };

/**
 * A v1 line made by the real `openssl enc -aes-256-cbc -a -salt -k SECRET`:
 * its base64 is wrapped at 64 columns unless `oneLine` adds `-A`; the
 * wrapped lines are joined here, as a client must before sending.
 */
export function opensslSeal(plain: string, kdf: SealKdf, secret: string, oneLine = false): string {
  const args = ['enc', '-aes-256-cbc', '-a', ...(oneLine ? ['-A'] : []), '-salt', '-k', secret, ...OPENSSL_KDF_FLAGS[kdf]];
  const r = spawnSync('openssl', args, { input: plain, encoding: 'latin1' });
  assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.replace(/\n/g, '');
}

export interface Exchange {
  /** Everything the gateway sent until it closed. */
  received: Buffer;
  /** ms from the first write to the first byte received (-1 if none). */
  firstByteMs: number;
}

/**
 * Connects to `port`, writes `data` (ending the write side if `end`), and
 * collects what comes back until the connection closes. The socket does
 * not allow half-open, so it ends its side when the gateway does.
 */
export function exchange(port: number, data: string | Buffer, o: { end?: boolean } = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let start = 0;
    let firstByteMs = -1;
    const s = net.connect({ port, host: '127.0.0.1' }, () => {
      start = performance.now();
      if (o.end) s.end(data);
      else s.write(data);
    });
    s.on('data', (c: Buffer) => {
      if (firstByteMs < 0) firstByteMs = performance.now() - start;
      chunks.push(c);
    });
    s.on('error', () => undefined);
    s.once('close', () => resolve({ received: Buffer.concat(chunks), firstByteMs }));
  });
}

export interface Blackhole {
  /** A port on 127.0.0.1 whose SYNs go unanswered: a connect there can only time out. */
  port: number;
  close(): Promise<void>;
}

/**
 * A deterministic "non-routable" target on loopback: a listener (in a
 * child process) that never accepts — its event loop is parked in
 * Atomics.wait — with a backlog of 1. Its accept queue is filled with
 * connections first; Linux then drops further SYNs (the queue is full),
 * so the next connect neither succeeds nor is refused.
 */
export async function startBlackhole(): Promise<Blackhole> {
  const script = `
    const net = require('net'); const fs = require('fs');
    const s = net.createServer();
    s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
      fs.writeSync(1, s.address().port + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', () => reject(new Error('the blackhole process exited')));
  });
  // Fill the accept queue: connect until one connect is left hanging (then drop it).
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 16; i++) {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => undefined);
    const connected = await new Promise<boolean>((r) => {
      const t = setTimeout(() => r(false), 300);
      s.once('connect', () => {
        clearTimeout(t);
        r(true);
      });
    });
    if (!connected) {
      s.destroy();
      break;
    }
    fillers.push(s);
  }
  return {
    port,
    close: async () => {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** TCP handles (sockets and servers) this process has open. */
export function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPWrap' || r === 'TCPServerWrap').length;
}
