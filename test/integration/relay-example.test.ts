import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { CLI, ROOT, startCli, type Running } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';

const EXAMPLE = join(ROOT, 'examples', 'relay');
const ENV = {
  GREETER_SERVICE_TOKEN: 'greeter-service-token-0123456789',
  GREETER_CLIENT_TOKEN: 'greeter-client-token-0123456789',
  // Only the port changes from the example as written (port 0: a free one).
  RELAY_LISTEN: '127.0.0.1:0',
};

interface Proc {
  child: ChildProcess;
  lines: string[];
  stderr: string[];
  exited: Promise<number | null>;
}

/** Spawns `node ARGS` in the repository root (as the example's README runs it), collecting stdout lines. */
function run(args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const stderr: string[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, lines, stderr, exited };
}

describe('examples/relay: a gRPC server reached by its service code only', () => {
  let gateway: Running;
  let relay: string;
  let server: Proc;
  const procs: Proc[] = [];

  before(async () => {
    gateway = await startCli(join(EXAMPLE, 'gateway.yaml'), ENV, [], ['examples/relay/gateway.yaml']);
    relay = gateway.urls.relay!.replace(/^relay:\/\//, '');
    server = run(['examples/relay/server.mjs'], { PORTICO_RELAY: relay, GREETER_SERVICE_TOKEN: ENV.GREETER_SERVICE_TOKEN });
    procs.push(server);
    await waitFor(() => {
      if (server.child.exitCode !== null) throw new Error(`server.mjs exited: ${server.stderr.join('')}`);
      return server.lines.some((l) => l.includes('greeter serving by code'));
    }, 'the example server to register');
  });

  after(async () => {
    for (const p of procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        p.child.kill('SIGTERM');
        await p.exited;
      }
    }
    await gateway?.stop();
  });

  it('client.mjs gets the greeting through the relay', async () => {
    const client = run(['examples/relay/client.mjs', 'Ada'], { PORTICO_RELAY: relay, PORTICO_RELAY_TOKEN: ENV.GREETER_CLIENT_TOKEN });
    procs.push(client);
    assert.equal(await client.exited, 0, client.stderr.join(''));
    assert.deepEqual(client.lines, ['Hello, Ada! (served by greeter-1 through the relay)']);
    // The relay logged the pair (access log on stdout): the code, its registration, bytes both ways.
    const line = await waitFor(() => gateway.logs.find((l) => l.type === 'connection' && l.protocol === 'relay' && l.outcome === 'ok'), 'the relay access-log line');
    assert.equal(line.service, 'greeter-1');
    assert.match(String(line.target), /^tunnel:greeter-1@greeter-1#\d+$/);
    assert.ok(Number(line.bytesUp) > 0 && Number(line.bytesDown) > 0);
  });

  it('a stock grpc-js client gets it through `portico connect` on a local port', async () => {
    const fwd = run([CLI, 'connect', '--relay', relay, '--code', 'greeter-1', '--listen', '127.0.0.1:0', '--ca', 'examples/certs/demo.crt'], { PORTICO_RELAY_TOKEN: ENV.GREETER_CLIENT_TOKEN });
    procs.push(fwd);
    const ready = await waitFor(() => {
      if (fwd.child.exitCode !== null) throw new Error(`portico connect exited: ${fwd.stderr.join('')}`);
      return fwd.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'portico connect listening');
    }, 'portico connect to listen');
    const def = protoLoader.loadSync(join(EXAMPLE, 'helloworld.proto'));
    const Greeter = (grpc.loadPackageDefinition(def).helloworld as grpc.GrpcObject).Greeter as grpc.ServiceClientConstructor;
    const client = new Greeter(String(ready.listen), grpc.credentials.createInsecure());
    try {
      const reply = await new Promise<{ message: string }>((resolve, reject) =>
        client.SayHello({ name: 'Grace' }, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, r: { message: string }) => (err ? reject(err) : resolve(r))),
      );
      assert.equal(reply.message, 'Hello, Grace! (served by greeter-1 through the relay)');
    } finally {
      client.close();
    }
  });
});
