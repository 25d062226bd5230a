// `pidFile:` through the real binary: written with the process id at start,
// removed on exit (also after a failed start); a live one refuses a second
// start with one line, a stale one is replaced, a file that is not a pid
// file is refused and left alone.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import { processGone, runCli, startCli, stopAfter, tempDir, type Running } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';

async function start(t: TestContext, file: string): Promise<Running> {
  const gw = await startCli(file);
  stopAfter(t, gw.child, gw.exited);
  return gw;
}

/** A one-listener config answering `body`, with `pidFile`. */
function writeConfig(dir: string, name: string, pidFile: string, body: string, listen = '127.0.0.1:0'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(
    file,
    stringify({
      pidFile,
      shutdownTimeout: '2s',
      listeners: [{ name: 'web', protocol: 'http', listen, accessLog: false }],
      routes: [{ name: 'hello', listener: 'web', respond: { body } }],
    }),
  );
  return file;
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}


/** The pid of a process that has exited (and been reaped): what a stale pid file names. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  const pid = child.pid!;
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
  return pid;
}

test('pidFile: holds the pid while running, removed after SIGTERM', async (t) => {
  const dir = tempDir(t, 'pid');
  const pidFile = path.join(dir, 'run', 'portico.pid');
  fs.mkdirSync(path.dirname(pidFile));
  const gw = await start(t, writeConfig(dir, 'a.yaml', pidFile, 'one'));
  assert.equal(fs.readFileSync(pidFile, 'utf8'), `${gw.child.pid}\n`);
  assert.equal(await get(`${gw.urls.web}/`), 'one');
  // No temporary file is left beside it.
  assert.deepEqual(fs.readdirSync(path.dirname(pidFile)), ['portico.pid']);

  assert.equal(await gw.stop('SIGTERM'), 0);
  assert.equal(fs.existsSync(pidFile), false);
  assert.deepEqual(fs.readdirSync(path.dirname(pidFile)), []);
});

test('pidFile: a second start while the first runs fails with one line and leaves the file', async (t) => {
  const dir = tempDir(t, 'pid');
  const pidFile = path.join(dir, 'portico.pid');
  const first = await start(t, writeConfig(dir, 'a.yaml', pidFile, 'first'));

  const second = await runCli(['start', '--config', writeConfig(dir, 'b.yaml', pidFile, 'second')], { timeoutMs: 15_000 });
  assert.equal(second.code, 1);
  assert.equal(second.stdout, '', 'the refused start must not have started anything');
  const lines = second.stderr.trim().split('\n');
  assert.equal(lines.length, 1, second.stderr);
  assert.equal(lines[0], `portico: pid file ${pidFile} names running process ${first.child.pid}: is Portico already running?`);

  // The running instance and its pid file are untouched.
  assert.equal(fs.readFileSync(pidFile, 'utf8'), `${first.child.pid}\n`);
  assert.equal(await get(`${first.urls.web}/`), 'first');
  assert.equal(await first.stop('SIGTERM'), 0);
  assert.equal(fs.existsSync(pidFile), false);
});

test('pidFile: a stale file (its process is gone) is replaced', async (t) => {
  const dir = tempDir(t, 'pid');
  const pidFile = path.join(dir, 'portico.pid');
  fs.writeFileSync(pidFile, `${await deadPid()}\n`);
  const gw = await start(t, writeConfig(dir, 'a.yaml', pidFile, 'fresh'));
  assert.equal(fs.readFileSync(pidFile, 'utf8'), `${gw.child.pid}\n`);
  assert.equal(await get(`${gw.urls.web}/`), 'fresh');
  assert.equal(await gw.stop('SIGTERM'), 0);
  assert.equal(fs.existsSync(pidFile), false);
});

test('pidFile: a file that does not hold a pid is refused and left alone', async (t) => {
  const dir = tempDir(t, 'pid');
  for (const content of ['not a pid\n', '']) {
    const pidFile = path.join(dir, 'precious.txt');
    fs.writeFileSync(pidFile, content);
    const res = await runCli(['start', '--config', writeConfig(dir, 'a.yaml', pidFile, 'x')], { timeoutMs: 15_000 });
    assert.equal(res.code, 1);
    assert.equal(res.stderr, `portico: pid file ${pidFile} exists but does not hold a (readable) process id; remove it or choose another path\n`);
    assert.equal(fs.readFileSync(pidFile, 'utf8'), content);
  }
});

test('pidFile: removed after a failed start; an unwritable path fails the start', async (t) => {
  const dir = tempDir(t, 'pid');
  // A failed start (the address is taken): exit 1, and the pid file written at start is gone.
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen({ host: '127.0.0.1', port: 0, exclusive: true }, resolve));
  t.after(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
  const busy = `127.0.0.1:${(squatter.address() as net.AddressInfo).port}`;
  const pidFile = path.join(dir, 'portico.pid');
  const failed = await runCli(['start', '--config', writeConfig(dir, 'busy.yaml', pidFile, 'x', busy)], { timeoutMs: 15_000 });
  assert.equal(failed.code, 1);
  assert.match(failed.stdout, /"msg":"cannot start"/);
  assert.match(failed.stdout, /EADDRINUSE/);
  assert.equal(fs.existsSync(pidFile), false);

  // A directory that does not exist: one line naming the file, nothing bound.
  const nowhere = path.join(dir, 'missing', 'portico.pid');
  const res = await runCli(['start', '--config', writeConfig(dir, 'nowhere.yaml', nowhere, 'x')], { timeoutMs: 15_000 });
  assert.equal(res.code, 1);
  assert.equal(res.stdout, '');
  assert.match(res.stderr, new RegExp(`^portico: cannot write pid file ${nowhere.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOENT`));
  assert.equal(res.stderr.trim().split('\n').length, 1);
});

test('pidFile: with workers: 2 it names the primary, and SIGKILL of the primary leaves it stale for the next start', async (t) => {
  const dir = tempDir(t, 'pid');
  const pidFile = path.join(dir, 'portico.pid');
  const file = writeConfig(dir, 'w.yaml', pidFile, 'workers');
  fs.appendFileSync(file, 'workers: 2\n');
  const gw = await start(t, file);
  assert.equal(fs.readFileSync(pidFile, 'utf8'), `${gw.child.pid}\n`);
  const workers = gw.logs.find((l) => l.msg === 'portico started')!.workerPids as number[];
  assert.equal(workers.length, 2);

  // The primary dies without cleaning up: its workers follow (their IPC channel closes), the pid file stays behind.
  gw.child.kill('SIGKILL');
  await gw.exited;
  for (const pid of workers) await waitFor(() => processGone(pid), `worker ${pid} to exit`);
  assert.equal(fs.readFileSync(pidFile, 'utf8'), `${gw.child.pid}\n`);

  const next = await start(t, file);
  assert.equal(fs.readFileSync(pidFile, 'utf8'), `${next.child.pid}\n`);
  assert.equal(await get(`${next.urls.web}/`), 'workers');
  assert.equal(await next.stop('SIGTERM'), 0);
  assert.equal(fs.existsSync(pidFile), false);
});
