import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './upstream.js';
import { waitFor } from './wait.js';

/** What a test says when redis-server is not installed: tests never skip. */
export const REDIS_MISSING = 'redis-server is required: apt-get install redis-server (scripts/ensure-deps.mjs does it when run as root)';

export interface TestRedis {
  port: number;
  /** redis://127.0.0.1:PORT */
  url: string;
  /** Sends one command and resolves with the raw RESP reply text. */
  command(...args: string[]): Promise<string>;
  /** Stops the server process mid-test (SIGTERM, then SIGKILL after 5 s); its data is gone. */
  halt(): Promise<void>;
  /** Starts it again on the same port (after halt()). */
  restart(): Promise<void>;
  /** Stops the server and removes its temp folder: call it in after(). */
  stop(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that holds connections open but never answers. */
  pause(): void;
  resume(): void;
}

function hasRedis(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Where the RESP reply starting at `at` ends, or -1 while it is incomplete (bytes as latin1 characters). */
function replyEnd(buf: string, at: number): number {
  const nl = buf.indexOf('\r\n', at);
  if (nl < 0) return -1;
  const type = buf[at];
  const n = Number(buf.slice(at + 1, nl));
  if (type === '$') {
    if (n < 0) return nl + 2;
    return buf.length >= nl + 2 + n + 2 ? nl + 2 + n + 2 : -1;
  }
  if (type === '*') {
    let pos = nl + 2;
    for (let i = 0; i < n; i++) {
      pos = replyEnd(buf, pos);
      if (pos < 0) return -1;
    }
    return pos;
  }
  return nl + 2; // + - :
}

/** Sends one RESP command on a fresh connection; resolves with the reply text (bounded: 2 s). */
function send(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('redis command timed out'));
    }, 2000);
    s.on('connect', () => s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (replyEnd(buf, 0) === buf.length) {
        clearTimeout(timer);
        s.end();
        resolve(Buffer.from(buf, 'latin1').toString());
      }
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * Starts a real redis-server on a free loopback port, with its working dir
 * and pid file in a temp folder and no persistence, and waits (polling
 * PING) until it answers. Throws REDIS_MISSING when it is not installed.
 */
export async function startRedis(): Promise<TestRedis> {
  if (!hasRedis()) throw new Error(REDIS_MISSING);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-redis-'));
  let port = await freePort();
  let child: ChildProcess | undefined;
  let output = '';

  const launch = async (): Promise<void> => {
    output = '';
    const c = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--pidfile', path.join(dir, 'redis.pid'), '--daemonize', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = c;
    c.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    let exited = false;
    c.once('exit', () => (exited = true));
    await waitFor(
      async () => {
        if (exited) throw new Error(`redis-server exited: ${output.slice(-500)}`);
        return (await send(port, ['PING'])).startsWith('+PONG');
      },
      'redis-server to answer PING',
      10_000,
    );
  };

  try {
    await launch();
  } catch {
    // The port was taken between freePort() and the bind: one more try on another port.
    child?.kill('SIGKILL');
    port = await freePort();
    await launch();
  }
  const killNow = () => child?.kill('SIGKILL');
  process.once('exit', killNow);

  const stop = async (): Promise<void> => {
    const c = child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGCONT');
    c.kill('SIGTERM');
    const force = setTimeout(() => c.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(force);
  };

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    command: (...args: string[]) => send(port, args),
    halt: stop,
    stop: async () => {
      await stop();
      process.off('exit', killNow);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    restart: async () => {
      await stop();
      await launch();
    },
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
  };
}
