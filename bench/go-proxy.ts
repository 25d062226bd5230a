/**
 * The `go` contender: Go's net/http/httputil.ReverseProxy doing the work of
 * Portico's users-api route (bench/go-proxy/main.go). Built at bench start
 * with the Debian toolchain (`golang-go`, standard library only: no module
 * download) into a temp dir, with GOCACHE and GOPATH in that dir too; run
 * with GOMAXPROCS=1, pinned like the other proxies under test.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { makeTempDir, SMALL_BODY } from './nginx.js';
import { Managed, REPO_ROOT, findBinary, httpGet, pinned, waitForHttp200 } from './util.js';

export const GO_PROXY_SOURCE = path.join(REPO_ROOT, 'bench', 'go-proxy', 'main.go');

/** The built binary and the toolchain's version, or why there is none. */
export type GoBuild = { ok: true; bin: string; version: string } | { ok: false; reason: string };

/** Builds bench/go-proxy/main.go with `go build` (bounded: 120 s). Never throws. */
export async function buildGoProxy(): Promise<GoBuild> {
  const go = findBinary('go', ['/usr/lib/go/bin', '/usr/local/go/bin']);
  if (go === undefined) return { ok: false, reason: 'Go is not installed (Debian: apt-get install golang-go; the bench installs it when run as root without --no-install)' };
  if (!existsSync(GO_PROXY_SOURCE)) return { ok: false, reason: `${path.relative(REPO_ROOT, GO_PROXY_SOURCE)} not found` };
  const dir = await makeTempDir('go');
  const bin = path.join(dir, 'go-proxy');
  const env = { ...process.env, GO111MODULE: 'off', GOCACHE: path.join(dir, 'cache'), GOPATH: path.join(dir, 'gopath'), GOFLAGS: '', CGO_ENABLED: '0' };
  const r = spawnSync(go, ['build', '-o', bin, GO_PROXY_SOURCE], { cwd: path.dirname(GO_PROXY_SOURCE), env, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0 || !existsSync(bin)) {
    const why = r.error?.message ?? `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().slice(-1000);
    return { ok: false, reason: `go build failed: ${why || `exit ${String(r.status)}`}` };
  }
  const v = spawnSync(go, ['version'], { encoding: 'utf8' });
  const version = /go version (\S+)/.exec(v.stdout ?? '')?.[1] ?? 'unknown';
  return { ok: true, bin, version };
}

export interface RunningGoProxy {
  proc: Managed;
  port: number;
  /** What the sanity request noticed (wrong body, missing header…). */
  warnings: string[];
}

/**
 * Starts the built proxy on 127.0.0.1:port (GOMAXPROCS=1, pinned to `cpu`), waits for GET
 * /users/small, and checks one request through it (body, X-Served-By).
 */
export async function startGoProxy(bin: string, port: number, upstreamPort: number, cpu: number | undefined): Promise<RunningGoProxy> {
  const [cmd, args] = pinned(cpu, bin, ['-listen', `127.0.0.1:${port}`, '-upstream', `127.0.0.1:${upstreamPort}`]);
  const proc = new Managed('go proxy', cmd, args, { env: { ...process.env, GOMAXPROCS: '1' } });
  await waitForHttp200('go proxy', port, '/users/small', { host: 'api.example.com' }, () => proc.exitReason());
  const warnings: string[] = [];
  try {
    const r = await httpGet(port, '/users/small', { host: 'api.example.com', 'x-debug': '1' });
    if (r.body.toString('utf8') !== SMALL_BODY) warnings.push(`GET /users/small through the go proxy: unexpected body ${JSON.stringify(r.body.toString('utf8').slice(0, 80))}`);
    if (r.headers['x-served-by'] !== 'portico') warnings.push('GET /users/small through the go proxy: response lacks X-Served-By: portico');
  } catch (err) {
    warnings.push(`GET /users/small through the go proxy failed: ${(err as Error).message}`);
  }
  return { proc, port, warnings };
}
