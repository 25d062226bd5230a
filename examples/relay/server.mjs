// A gRPC HelloWorld server that listens on NO port: it registers the service
// code at the relay (serveByCode) and serves the gRPC connections the relay
// carries to it. Run from the repository root after `npm run build`:
//   GREETER_SERVICE_TOKEN=… node examples/relay/server.mjs
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { serveByCode } from '../../dist/tunnel/relay/serve.js';

const here = (file) => fileURLToPath(new URL(file, import.meta.url));
const relay = process.env.PORTICO_RELAY ?? '127.0.0.1:7443';
const code = process.env.GREETER_CODE ?? 'greeter-1';
const token = process.env.GREETER_SERVICE_TOKEN;
if (!token) {
  console.error('set GREETER_SERVICE_TOKEN (a services: token of the relay)');
  process.exit(2);
}

const { helloworld } = grpc.loadPackageDefinition(protoLoader.loadSync(here('helloworld.proto')));
const server = new grpc.Server();
server.addService(helloworld.Greeter.service, {
  SayHello(call, callback) {
    callback(null, { message: `Hello, ${call.request.name}! (served by ${code} through the relay)` });
  },
});
// grpc-js serves connections it is handed: each relayed stream is one HTTP/2 connection (h2c: the relay's TLS protects both hops).
const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());

const served = serveByCode(relay, code, { token, ca: process.env.PORTICO_RELAY_CA ?? here('../certs/demo.crt') }, (stream, info) => {
  console.log(JSON.stringify({ msg: 'relayed connection', code, client: info.client }));
  injector.injectConnection(stream);
});
await served.connected();
console.log(JSON.stringify({ msg: 'greeter serving by code', code, relay }));

const stop = async () => {
  injector.drain(1000);
  await served.close();
  injector.destroy();
  server.forceShutdown();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
