#!/usr/bin/env node
// Makes sure the external programs the tests start are installed: for each
// missing binary, installs its Debian package when running as root with
// apt-get (one `apt-get update` first), otherwise exits 1 with a one-line
// instruction. Called by scripts/test.mjs before compiling.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Binaries the test suite runs, and the Debian package of each. */
const NEEDED = [
  { binary: 'redis-server', pkg: 'redis-server' },
  // Certificates for the TLS tests are made with the openssl CLI; curl is one of the real TLS clients.
  { binary: 'openssl', pkg: 'openssl' },
  { binary: 'curl', pkg: 'curl' },
];

function onPath(binary) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, binary), constants.X_OK);
      return true;
    } catch {
      /* not here */
    }
  }
  return false;
}

const missing = NEEDED.filter((n) => !onPath(n.binary));
if (missing.length === 0) process.exit(0);

const instruction = (m) => `${m.binary} is required: apt-get install ${m.pkg}`;
const canInstall = typeof process.getuid === 'function' && process.getuid() === 0 && onPath('apt-get');
if (!canInstall) {
  for (const m of missing) console.error(instruction(m));
  process.exit(1);
}

const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
console.error(`ensure-deps: installing ${missing.map((m) => m.pkg).join(', ')} with apt-get`);
const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
if (update.status !== 0) {
  for (const m of missing) console.error(instruction(m));
  process.exit(1);
}
const install = spawnSync('apt-get', ['install', '-y', '-qq', ...missing.map((m) => m.pkg)], { stdio: 'inherit', env });
const still = missing.filter((m) => !onPath(m.binary));
if (install.status !== 0 || still.length > 0) {
  for (const m of still.length > 0 ? still : missing) console.error(instruction(m));
  process.exit(1);
}
