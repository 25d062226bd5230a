// Calls the HelloWorld server by its service code only: no address of the
// server anywhere. A local forwarder (the one `portico connect` runs) carries
// the gRPC channel to the code at the relay. Run from the repository root:
//   PORTICO_RELAY_TOKEN=… node examples/relay/client.mjs [NAME]
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { startForwarder } from '../../dist/tunnel/relay/forward.js';
import { createLogger } from '../../dist/observability/logger.js';

const here = (file) => fileURLToPath(new URL(file, import.meta.url));
const relay = process.env.PORTICO_RELAY ?? '127.0.0.1:7443';
const code = process.env.GREETER_CODE ?? 'greeter-1';
const token = process.env.PORTICO_RELAY_TOKEN;
if (!token) {
  console.error('set PORTICO_RELAY_TOKEN (a clients: token of the relay)');
  process.exit(2);
}

const forwarder = await startForwarder({
  listen: { host: '127.0.0.1', port: 0 },
  relay,
  code,
  token,
  ca: process.env.PORTICO_RELAY_CA ?? here('../certs/demo.crt'),
  logger: createLogger('warn'),
});
const { helloworld } = grpc.loadPackageDefinition(protoLoader.loadSync(here('helloworld.proto')));
const client = new helloworld.Greeter(`127.0.0.1:${forwarder.address.port}`, grpc.credentials.createInsecure());
client.SayHello({ name: process.argv[2] ?? 'world' }, { deadline: Date.now() + 10_000 }, async (err, reply) => {
  client.close();
  await forwarder.close();
  if (err) {
    console.error(`SayHello failed: ${err.code} ${err.details}`);
    process.exit(1);
  }
  console.log(reply.message);
});
