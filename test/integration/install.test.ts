// The paths operators install and run Portico by: the packed tarball installed
// with --omit=dev, `npm ci --omit=dev` in a checkout, the Dockerfile's build
// context, and the systemd unit (docs/deploy.md). dist/ is built by
// `npm test` before these run; npm reaches the registry with --prefer-offline.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { stringify } from 'yaml';
import { loadConfigText } from '../../src/config/load.js';
import { CLI, ROOT, startCli, startProcess, stopAfter, tempDir } from '../helpers/cli.js';
import { freePort, startUpstream } from '../helpers/upstream.js';

// ---------------------------------------------------------------- helpers

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; killed (and rejected) after `timeoutMs`. npm_* variables of the outer `npm test` are dropped. */
function run(command: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Ran> {
  const timeoutMs = o.timeoutMs ?? 120_000;
  const env = Object.fromEntries(Object.entries({ ...process.env, ...o.env }).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: o.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const NPM_QUIET = ['--no-audit', '--no-fund', '--prefer-offline'];

/** The files `npm pack` puts in the tarball (paths inside `package/`), without building or writing it. */
async function packedFiles(): Promise<string[]> {
  const r = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
}

/** The files git would give a fresh clone (tracked and new, minus ignored), copied into `dir`. */
async function cleanCopy(dir: string): Promise<void> {
  const r = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard']);
  assert.equal(r.code, 0, r.stderr);
  for (const f of r.stdout.split('\0')) {
    // Regular files only: not ones deleted in the working tree, not a node_modules symlink shared between worktrees.
    if (!f || f === 'node_modules' || !fs.lstatSync(path.join(ROOT, f), { throwIfNoEntry: false })?.isFile()) continue;
    fs.mkdirSync(path.join(dir, path.dirname(f)), { recursive: true });
    fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
  }
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

/** One Dockerfile instruction: keyword (upper case) and its arguments; continuation lines joined. */
interface Instruction {
  keyword: string;
  args: string;
}

function parseDockerfile(text: string): Instruction[][] {
  const joined = text.replace(/\\\r?\n/g, ' ');
  const stages: Instruction[][] = [[]];
  for (const raw of joined.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+)\s*(.*)$/.exec(line)!;
    const ins = { keyword: m[1]!.toUpperCase(), args: m[2]!.trim() };
    if (ins.keyword === 'FROM') stages.push([]);
    stages[stages.length - 1]!.push(ins);
  }
  return stages; // stages[0]: the ARGs before the first FROM
}

/** Exec form (`["a", "b"]`) or shell form (split on spaces). */
function words(args: string): string[] {
  return args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/);
}

/** COPY/ADD: flags (--from=…, --chown=…) and sources (the last word is the destination). */
function copySources(args: string): { from: string | undefined; sources: string[] } {
  const parts = args.split(/\s+/);
  let from: string | undefined;
  while (parts[0]?.startsWith('--')) {
    const flag = parts.shift()!;
    if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
  }
  const rest = parts.join(' ');
  const list = rest.startsWith('[') ? (JSON.parse(rest) as string[]) : parts;
  return { from, sources: list.slice(0, -1) };
}

/**
 * `.dockerignore` as Docker applies it: each line a pattern (`*` within one
 * path segment, `**` across segments, `?` one character); a pattern matching
 * a file or one of its parent directories applies to it; `!` re-includes; the
 * last pattern that applies decides.
 */
function dockerignore(text: string): (file: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = path.posix.normalize((negate ? l.slice(1) : l).trim()).replace(/^\/+|\/+$/g, '');
      let re = '';
      for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i]!;
        if (c === '*' && pattern[i + 1] === '*') {
          re += '.*';
          i++;
          if (pattern[i + 1] === '/') i++;
        } else if (c === '*') re += '[^/]*';
        else if (c === '?') re += '[^/]';
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { negate, re: new RegExp(`^${re}$`) };
    });
  return (file) => {
    const segments = file.split('/');
    const selfAndParents = segments.map((_, i) => segments.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const r of rules) if (selfAndParents.some((p) => r.re.test(p))) excluded = !r.negate;
    return excluded;
  };
}

function filesUnder(rel: string): string[] {
  const abs = path.join(ROOT, rel);
  if (!fs.statSync(abs).isDirectory()) return [rel];
  return (fs.readdirSync(abs, { recursive: true }) as string[])
    .map((f) => path.posix.join(rel, f.split(path.sep).join('/')))
    .filter((f) => fs.statSync(path.join(ROOT, f)).isFile());
}

/** systemd unit file: section → key → values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.replace(/\\\n/g, ' ').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(current && eq > 0, `not a key=value line in a section: ${line}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

/** systemd time span ("15s", "1min 30s", "15") in ms. */
function timespanMs(text: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, sec: 1000, m: 60_000, min: 60_000 };
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)\s*([a-z]*)/g)) total += Number(m[1]) * units[m[2] || 's']!;
  return total;
}

async function installedPortico(t: TestContext): Promise<{ dir: string; bin: string; tarballFiles: string[] }> {
  const packDir = tempDir(t, 'pack');
  // dist/ is already built (npm test builds it): --ignore-scripts keeps `prepare` from building it again.
  const pack = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir]);
  assert.equal(pack.code, 0, pack.stderr);
  const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  const tarball = path.join(packDir, info!.filename);
  const dir = tempDir(t, 'installed');
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'portico-install-test', private: true }));
  const install = await run('npm', ['install', '--omit=dev', ...NPM_QUIET, tarball], { cwd: dir });
  assert.equal(install.code, 0, `npm install --omit=dev ${tarball} failed:\n${install.stderr}`);
  return { dir, bin: path.join(dir, 'node_modules', '.bin', 'portico'), tarballFiles: info!.files.map((f) => f.path) };
}

// ---------------------------------------------------------------- tests

test('npm pack, then npm install --omit=dev of the tarball: `portico start FILE` proxies, and SIGTERM exits 0', async (t) => {
  const { dir, bin, tarballFiles } = await installedPortico(t);
  for (const f of ['package.json', 'dist/cli/main.js', 'examples/default.yaml', 'deploy/portico.service']) {
    assert.ok(tarballFiles.includes(f), `${f} is not in the tarball`);
  }
  for (const f of tarballFiles) assert.doesNotMatch(f, /^(src|test|bench|build|node_modules|scripts)\//, `${f} should not be shipped`);
  // Runtime dependencies only.
  assert.ok(fs.existsSync(path.join(dir, 'node_modules', 'undici')));
  assert.equal(fs.existsSync(path.join(dir, 'node_modules', 'typescript')), false, 'a dev dependency was installed');

  const up = await startUpstream();
  t.after(() => up.close());
  const config = path.join(dir, 'portico.yaml');
  fs.writeFileSync(
    config,
    stringify({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [{ name: 'api', listener: 'web', match: { pathPrefix: '/api' }, stripPrefix: true, upstream: 'up' }],
    }),
  );
  // The binary as npm linked it: its shebang finds node on PATH.
  const gw = await startProcess(bin, ['start', config], { PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}` });
  stopAfter(t, gw.child, gw.exited);
  const r = await get(`${gw.urls.web}/api/through-the-tarball`);
  assert.equal(r.status, 200);
  assert.equal(up.received.length, 1);
  assert.equal(up.received[0]!.url, '/through-the-tarball');
  assert.equal(await gw.stop('SIGTERM'), 0);
  assert.ok(gw.logs.some((l) => l.msg === 'stopped'));
});

test('npm ci --omit=dev in a clean checkout: succeeds without TypeScript and says what to do; with dist/ present it keeps it', async (t) => {
  const dir = tempDir(t, 'checkout');
  await cleanCopy(dir);
  assert.equal(fs.existsSync(path.join(dir, 'dist')), false);
  const bare = await run('npm', ['ci', '--omit=dev', ...NPM_QUIET], { cwd: dir });
  assert.equal(bare.code, 0, `npm ci --omit=dev failed:\n${bare.stderr}`);
  assert.equal(fs.existsSync(path.join(dir, 'node_modules', 'typescript')), false);
  assert.match(bare.stderr, /dist\/ is not built and TypeScript is not installed/);
  assert.match(bare.stderr, /npm ci \(with the dev dependencies: prepare builds dist\/\), then npm prune --omit=dev/);

  // As the Dockerfile's runtime stage: dist/ from a build, then npm ci --omit=dev.
  fs.cpSync(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true });
  const built = await run('npm', ['ci', '--omit=dev', ...NPM_QUIET], { cwd: dir });
  assert.equal(built.code, 0, built.stderr);
  assert.match(built.stderr, /TypeScript is not installed \(--omit=dev\); using the dist\/ already built/);
  const validate = await run(process.execPath, [path.join(dir, 'dist', 'cli', 'main.js'), 'validate', path.join(dir, 'examples', 'default.yaml')], { cwd: dir });
  assert.equal(validate.code, 0, validate.stderr);
  assert.equal(validate.stdout, 'ok\n');
});

test('Dockerfile: its build context, the runtime stage (non-root, HEALTHCHECK, STOPSIGNAL), and the image when a Docker daemon exists', async (t) => {
  const stages = parseDockerfile(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
  const ignored = dockerignore(fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));
  assert.ok(stages.length >= 3, 'a multi-stage build (a build stage and a runtime stage)');

  // Every COPY/ADD from the context names files that exist and that .dockerignore lets through.
  let copies = 0;
  for (const stage of stages) {
    for (const ins of stage.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')) {
      const { from, sources } = copySources(ins.args);
      if (from !== undefined) continue;
      for (const src of sources) {
        copies++;
        const rel = path.posix.normalize(src).replace(/^\.\/|\/$/g, '');
        assert.ok(fs.existsSync(path.join(ROOT, rel)), `${ins.keyword} ${src}: not in the repository`);
        const files = filesUnder(rel);
        assert.ok(files.length > 0, `${ins.keyword} ${src}: no files`);
        for (const f of files) assert.equal(ignored(f), false, `${ins.keyword} ${src}: ${f} is excluded by .dockerignore`);
      }
    }
  }
  assert.ok(copies >= 5, `only ${copies} COPY sources found`);
  // What must never enter the context.
  for (const f of ['node_modules/undici/package.json', 'dist/cli/main.js', 'build/x', '.git/HEAD', 'test/integration/cli.test.ts']) {
    assert.equal(ignored(f), true, `${f} would be sent to the Docker daemon`);
  }

  const runtime = stages[stages.length - 1]!;
  const last = (k: string) => runtime.filter((i) => i.keyword === k).at(-1)?.args;
  assert.match(runtime[0]!.args, /\$\{NODE_IMAGE\}|node:\d+-(slim|alpine)/);
  const user = last('USER');
  assert.ok(user && !/^(root|0)(:|$)/.test(user), `runtime stage USER: ${user}`);
  assert.equal(last('STOPSIGNAL'), 'SIGTERM');
  assert.ok(last('EXPOSE'));
  assert.ok(runtime.some((i) => i.keyword === 'RUN' && /npm ci --omit=dev/.test(i.args)), 'runtime stage: npm ci --omit=dev');
  const healthcheck = last('HEALTHCHECK');
  assert.ok(healthcheck && healthcheck !== 'NONE');
  const healthCmd = words(healthcheck.slice(healthcheck.indexOf('CMD') + 3).trim());
  assert.equal(healthCmd[0], 'node', 'the health check runs node (slim images have no curl)');

  // The entrypoint file, as the image has it (WORKDIR + the tarball's layout), is in the packed package.
  const workdir = last('WORKDIR')!;
  const command = [...words(last('ENTRYPOINT') ?? '[]'), ...words(last('CMD') ?? '[]')];
  const entry = command.find((w) => w.endsWith('.js'));
  assert.ok(entry, `no .js entry point in ${JSON.stringify(command)}`);
  const inPackage = path.posix.relative(workdir, path.posix.resolve(workdir, entry));
  assert.ok((await packedFiles()).includes(inPackage), `${inPackage} is not in the tarball`);
  // The config path the CMD serves is where the Dockerfile puts the default config (and where docs/deploy.md mounts one).
  const configPath = command.find((w) => w.endsWith('.yaml'));
  assert.ok(configPath && runtime.some((i) => i.keyword === 'COPY' && i.args.endsWith(` ${configPath}`)), `CMD config ${configPath} is not provided`);

  // The health check command itself, against a real admin API: healthy, then (gateway gone) unhealthy.
  const envLine = runtime.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ');
  assert.match(envLine, /PORTICO_HEALTH_URL=http:\/\/127\.0\.0\.1:9180\/health/);
  assert.match(envLine, /PORTICO_ADMIN=127\.0\.0\.1:9180/);
  const adminPort = await freePort();
  const gw = await startCli(path.join(ROOT, 'examples', 'default.yaml'), { PORTICO_LISTEN: `127.0.0.1:${await freePort()}`, PORTICO_ADMIN: `127.0.0.1:${adminPort}` });
  stopAfter(t, gw.child, gw.exited);
  const healthUrl = `http://127.0.0.1:${adminPort}/health`;
  const healthy = await run(healthCmd[0]!, healthCmd.slice(1), { env: { PORTICO_HEALTH_URL: healthUrl }, timeoutMs: 10_000 });
  assert.equal(healthy.code, 0, healthy.stderr);
  assert.equal(await gw.stop(), 0);
  const unhealthy = await run(healthCmd[0]!, healthCmd.slice(1), { env: { PORTICO_HEALTH_URL: healthUrl }, timeoutMs: 10_000 });
  assert.equal(unhealthy.code, 1);

  // The image itself, only where a daemon runs.
  const info = await run('docker', ['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 20_000 }).catch((err: Error) => ({ code: -1, stdout: '', stderr: err.message }));
  if (info.code !== 0) {
    const why = (info.stderr.split('\n').find((l) => /cannot connect|error|not found|ENOENT/i.test(l)) ?? info.stderr.split('\n')[0] ?? '').trim();
    t.diagnostic(`docker image not built: no Docker daemon (docker info: ${why || `exit ${info.code}`}); the build-context checks above ran`);
    return;
  }
  const tag = `portico-install-test:${process.pid}`;
  const build = await run('docker', ['build', '-t', tag, '.'], { timeoutMs: 600_000 });
  assert.equal(build.code, 0, build.stderr);
  t.after(() => run('docker', ['rmi', '-f', tag]).then(() => undefined));
  const port = await freePort();
  const started = await run('docker', ['run', '-d', '--network', 'host', '-e', `PORTICO_LISTEN=127.0.0.1:${port}`, '-e', `PORTICO_ADMIN=127.0.0.1:${await freePort()}`, tag]);
  assert.equal(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  t.after(() => run('docker', ['rm', '-f', id]).then(() => undefined));
  let welcome: { status: number; body: string } | undefined;
  for (let i = 0; i < 100 && !welcome; i++) {
    welcome = await get(`http://127.0.0.1:${port}/`).catch(() => undefined);
    if (!welcome) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal(welcome?.status, 200);
  assert.equal((await run('docker', ['exec', id, 'id', '-u'])).stdout.trim() !== '0', true, 'the container runs as root');
  const stop = await run('docker', ['stop', '-t', '15', id], { timeoutMs: 30_000 });
  assert.equal(stop.code, 0, stop.stderr);
  const exit = await run('docker', ['inspect', '--format', '{{.State.ExitCode}}', id]);
  assert.equal(exit.stdout.trim(), '0');
});

test('deploy/portico.service: the keys operators rely on, and `systemd-analyze verify` where available', async (t) => {
  const file = path.join(ROOT, 'deploy', 'portico.service');
  const text = fs.readFileSync(file, 'utf8');
  const unit = parseUnit(text);
  const service = unit.get('Service');
  assert.ok(service && unit.has('Unit') && unit.has('Install'));
  const one = (k: string) => {
    const v = service.get(k);
    assert.equal(v?.length, 1, `[Service] ${k}: ${JSON.stringify(v)}`);
    return v[0]!;
  };
  assert.ok(['simple', 'exec'].includes(one('Type')));
  assert.equal(one('User'), 'portico');
  assert.match(one('ExecStart'), /^\/\S+\/portico start \/etc\/portico\/portico\.yaml$/);
  assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(one('KillSignal'), 'SIGTERM');
  // SIGTERM to the main process only: with workers it forwards the stop itself.
  assert.equal(one('KillMode'), 'mixed');
  assert.equal(one('Restart'), 'on-failure');
  assert.equal(one('LimitNOFILE'), '65536');
  assert.equal(one('NoNewPrivileges'), 'yes');
  assert.equal(one('ProtectSystem'), 'strict');
  assert.equal(one('ProtectHome'), 'yes');
  assert.equal(one('PrivateTmp'), 'yes');
  assert.match(one('AmbientCapabilities'), /\bCAP_NET_BIND_SERVICE\b/);
  assert.equal(service.has('MemoryDenyWriteExecute'), false, 'V8 needs writable+executable pages for its JIT');
  // A bit more than the gateway's default shutdownTimeout, so systemd does not SIGKILL a drain.
  const loaded = loadConfigText('listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0" }]\n');
  assert.ok(loaded.ok, JSON.stringify(loaded));
  const stopMs = timespanMs(one('TimeoutStopSec'));
  assert.ok(stopMs > loaded.config.shutdownTimeout && stopMs <= loaded.config.shutdownTimeout + 30_000, `TimeoutStopSec=${one('TimeoutStopSec')}`);

  const which = await run('sh', ['-c', 'command -v systemd-analyze'], { timeoutMs: 10_000 });
  if (which.code !== 0) {
    t.diagnostic('systemd-analyze not installed: deploy/portico.service checked by its keys only');
    return;
  }
  // verify needs the ExecStart binary to exist: a stand-in for the installed `portico` in a temp dir.
  const dir = tempDir(t, 'systemd');
  const bin = path.join(dir, 'portico');
  fs.writeFileSync(bin, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`, { mode: 0o755 });
  const copy = path.join(dir, 'portico.service');
  fs.writeFileSync(copy, text.replaceAll(/\/\S+\/bin\/portico\b/g, bin));
  const verify = await run(which.stdout.trim(), ['verify', copy], { cwd: dir, timeoutMs: 30_000 });
  assert.equal(verify.code, 0, verify.stderr);
  assert.equal(verify.stderr.trim(), '', `systemd-analyze verify complained:\n${verify.stderr}`);
});
