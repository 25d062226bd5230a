/**
 * The gRPC upstream of the grpc-unary and grpc-bidi scenarios: a
 * @grpc/grpc-js server (insecure: h2c) implementing echo.Echo from
 * bench/echo.proto. Its own process, pinned with the load generator:
 *
 *   node grpc-server.js PORT PROTO_FILE
 *
 * Prints "ready" on stdout once bound; stops on SIGTERM/SIGINT.
 */
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const port = Number(process.argv[2]);
const protoFile = process.argv[3];
if (!Number.isInteger(port) || port <= 0 || protoFile === undefined) {
  process.stderr.write('usage: grpc-server.js PORT PROTO_FILE\n');
  process.exit(2);
}

interface EchoMessage {
  message: string;
}
const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(protoFile, { keepCase: true })) as unknown as {
  echo: { Echo: { service: grpc.ServiceDefinition } };
};

const server = new grpc.Server();
server.addService(pkg.echo.Echo.service, {
  UnaryEcho: (call: grpc.ServerUnaryCall<EchoMessage, EchoMessage>, cb: grpc.sendUnaryData<EchoMessage>) => cb(null, { message: call.request.message }),
  BidirectionalStreamingEcho: (call: grpc.ServerDuplexStream<EchoMessage, EchoMessage>) => {
    call.on('data', (m: EchoMessage) => call.write({ message: m.message }));
    call.on('end', () => call.end());
    call.on('error', () => undefined);
  },
});
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    process.stderr.write(`grpc-server: cannot bind 127.0.0.1:${port}: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write('ready\n');
});

const stop = (): void => {
  server.tryShutdown(() => process.exit(0));
  setTimeout(() => server.forceShutdown(), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
