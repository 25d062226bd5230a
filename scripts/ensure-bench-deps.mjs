#!/usr/bin/env node
// Installs the bench's peers and load tools when they are missing, by group
// (arguments; none = every group):
//   tcp     haproxy and iperf3, and nginx's stream module when nginx itself is
//           installed (the module alone would pull nginx in, which would change
//           the bench's node-upstream path on a machine without nginx);
//   go      golang-go: the Go toolchain that builds the `go` contender
//           (bench/go-proxy/main.go, standard library only);
//   h2load  nghttp2-client: h2load, the load generator of the `h2` scenario.
// Only as root with apt-get; otherwise, or when apt fails, it prints what is
// missing and the bench skips those peers (or falls back to its own tool).
// Bounded (apt-get update 120 s, install 240 s) and never fatal: always exits 0.
// Called by bench/run.ts with the groups its scenarios need (`--no-install`
// skips it).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

const SBIN = ['/usr/sbin', '/usr/local/sbin', '/sbin'];
const GROUPS = ['tcp', 'go', 'h2load'];

function which(binary) {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...SBIN]) {
    if (!dir) continue;
    try {
      accessSync(join(dir, binary), constants.X_OK);
      return join(dir, binary);
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** nginx built with a dynamic stream module whose file is missing. */
function nginxLacksStream() {
  const nginx = which('nginx');
  if (nginx === undefined) return false;
  const r = spawnSync(nginx, ['-V'], { encoding: 'utf8' });
  const flags = `${r.stderr ?? ''}${r.stdout ?? ''}`;
  if (!flags.includes('--with-stream=dynamic')) return false;
  const dir = /--modules-path=(\S+)/.exec(flags)?.[1] ?? '/usr/lib/nginx/modules';
  return !existsSync(join(dir, 'ngx_stream_module.so'));
}

const asked = process.argv.slice(2);
for (const g of asked) {
  if (!GROUPS.includes(g)) {
    console.error(`ensure-bench-deps: unknown group '${g}' (known: ${GROUPS.join(', ')})`);
    process.exit(0);
  }
}
const groups = new Set(asked.length > 0 ? asked : GROUPS);

/** Package → what the bench does without it. */
const missing = new Map();
if (groups.has('tcp')) {
  if (which('haproxy') === undefined) missing.set('haproxy', 'the haproxy TCP peer is skipped');
  if (which('iperf3') === undefined) missing.set('iperf3', 'tcp-bulk uses the Node sender and sink');
  if (nginxLacksStream()) missing.set('libnginx-mod-stream', 'the nginx stream TCP peer is skipped');
}
if (groups.has('go') && which('go') === undefined) missing.set('golang-go', 'the go contender is skipped');
if (groups.has('h2load') && which('h2load') === undefined) missing.set('nghttp2-client', 'h2 is loaded with the node:http2 generator');
if (missing.size === 0) process.exit(0);

const pkgs = [...missing.keys()];
const consequences = () => [...missing.entries()].map(([p, c]) => `${p}: ${c}`).join('; ');
const canInstall = typeof process.getuid === 'function' && process.getuid() === 0 && which('apt-get') !== undefined;
if (!canInstall) {
  console.error(`ensure-bench-deps: not installed: ${pkgs.join(', ')} (as root: apt-get install ${pkgs.join(' ')}); ${consequences()}`);
  process.exit(0);
}

const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
console.error(`ensure-bench-deps: installing ${pkgs.join(', ')} with apt-get`);
const update = spawnSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'inherit', 'inherit'], env, timeout: 120_000 });
if (update.status !== 0) console.error('ensure-bench-deps: apt-get update failed; trying the install with the lists at hand');
// No service is started by the bench's installs: haproxy's packaged service is not used, and
// policy-rc.d (where present) keeps it from starting.
const install = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { stdio: ['ignore', 'inherit', 'inherit'], env, timeout: 240_000 });
if (install.status !== 0) console.error(`ensure-bench-deps: apt-get install ${pkgs.join(' ')} failed; ${consequences()}`);
process.exit(0);
