#!/usr/bin/env node
// Installs the peers of the bench's TCP scenarios when they are missing:
// haproxy and iperf3, and nginx's stream module when nginx itself is
// installed (the module alone would pull nginx in, which would change the
// bench's node-upstream path on a machine without nginx). Only as root with
// apt-get; otherwise, or when apt fails, it prints what is missing and the
// bench skips those peers. Bounded (apt-get update 120 s, install 240 s) and
// never fatal: always exits 0. Called by bench/run.ts (`--no-install` skips it).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

const SBIN = ['/usr/sbin', '/usr/local/sbin', '/sbin'];

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

const missing = [];
if (which('haproxy') === undefined) missing.push('haproxy');
if (which('iperf3') === undefined) missing.push('iperf3');
if (nginxLacksStream()) missing.push('libnginx-mod-stream');
if (missing.length === 0) process.exit(0);

const canInstall = typeof process.getuid === 'function' && process.getuid() === 0 && which('apt-get') !== undefined;
if (!canInstall) {
  console.error(`ensure-bench-deps: not installed: ${missing.join(', ')} (as root: apt-get install ${missing.join(' ')}); those TCP peers are skipped`);
  process.exit(0);
}

const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
console.error(`ensure-bench-deps: installing ${missing.join(', ')} with apt-get`);
const update = spawnSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'inherit', 'inherit'], env, timeout: 120_000 });
if (update.status !== 0) console.error('ensure-bench-deps: apt-get update failed; trying the install with the lists at hand');
// No service is started by the bench's installs: haproxy's packaged service is not used, and
// policy-rc.d (where present) keeps it from starting.
const install = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: ['ignore', 'inherit', 'inherit'], env, timeout: 240_000 });
if (install.status !== 0) console.error(`ensure-bench-deps: apt-get install ${missing.join(' ')} failed; those TCP peers are skipped`);
process.exit(0);
