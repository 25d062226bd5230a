import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './wait.js';

/** A real server the tests start from its Debian package (etcd, ZooKeeper, dnsmasq). */
export interface ServerProcess {
  /** Its temp folder (data, config): removed by stop(). */
  readonly dir: string;
  /** Stops the process (SIGTERM, then SIGKILL after 5 s); its data folder stays. */
  halt(): Promise<void>;
  /** Starts it again with the same arguments and port (after halt()). */
  restart(): Promise<void>;
  /** halt(), then removes the temp folder: call it in after(). */
  stop(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that holds connections open but never answers. */
  pause(): void;
  resume(): void;
  /** What the process printed last (for failure messages). */
  output(): string;
}

export interface ServerSpec {
  /** Temp folder name prefix. */
  name: string;
  /** The command and its arguments, given the temp folder. */
  command(dir: string): { file: string; args: string[] };
  /** Resolves true once the server answers (polled every 50 ms, up to 20 s). */
  ready(): Promise<boolean>;
  /** Writes config files into the temp folder before the first start. */
  prepare?(dir: string): void;
}

/** Spawns `spec`'s server with its data in a fresh temp folder and waits until it answers. */
export async function startServerProcess(spec: ServerSpec): Promise<ServerProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `portico-${spec.name}-`));
  spec.prepare?.(dir);
  let child: ChildProcess | undefined;
  let out = '';

  const launch = async (): Promise<void> => {
    const { file, args } = spec.command(dir);
    const c = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    const keep = (d: Buffer) => (out = (out + d.toString()).slice(-4000));
    c.stdout!.on('data', keep);
    c.stderr!.on('data', keep);
    let exited = false;
    c.once('exit', () => (exited = true));
    c.once('error', (err) => {
      exited = true;
      out += String(err);
    });
    await waitFor(
      async () => {
        if (exited) throw new Error(`${spec.name} exited: ${out.slice(-800)}`);
        return spec.ready();
      },
      `${spec.name} to answer`,
      20_000,
      50,
    );
  };

  const halt = async (): Promise<void> => {
    const c = child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGCONT');
    c.kill('SIGTERM');
    const force = setTimeout(() => c.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(force);
  };
  const killNow = () => child?.kill('SIGKILL');
  process.once('exit', killNow);
  try {
    await launch();
  } catch (err) {
    await halt();
    process.off('exit', killNow);
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    halt,
    restart: async () => {
      await halt();
      await launch();
    },
    stop: async () => {
      await halt();
      process.off('exit', killNow);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    output: () => out,
  };
}
