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
  // Config stores and service discovery: real etcd, ZooKeeper (a Java server) and a DNS server (dnsmasq).
  { binary: 'etcd', pkg: 'etcd-server' },
  { binary: 'etcdctl', pkg: 'etcd-client' },
  { binary: 'java', pkg: 'default-jre-headless' },
  { binary: 'zookeeper.jar', pkg: 'zookeeper', file: '/usr/share/java/zookeeper.jar' },
  { binary: 'dnsmasq', pkg: 'dnsmasq-base', file: '/usr/sbin/dnsmasq' },
];

/** Whether `n` is installed: its `file` exists, or its binary is on PATH. */
function installed(n) {
  if (n.file !== undefined) {
    try {
      accessSync(n.file, constants.R_OK);
      return true;
    } catch {
      return false;
    }
  }
  return onPath(n.binary);
}

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

const missing = NEEDED.filter((n) => !installed(n));
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
const install = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing.map((m) => m.pkg)], { stdio: 'inherit', env });
const still = missing.filter((m) => !installed(m));
if (install.status !== 0 || still.length > 0) {
  for (const m of still.length > 0 ? still : missing) console.error(instruction(m));
  process.exit(1);
}
