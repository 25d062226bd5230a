import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { registerZookeeper } from '../../src/discovery/register-zookeeper.js';
import { simpleConfig, startGateway } from '../helpers/gateway.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';
import { startZookeeper, type TestZookeeper } from '../helpers/zookeeper.js';

let zk: TestZookeeper;
before(async () => {
  zk = await startZookeeper();
});
after(async () => {
  await zk.stop();
});

test('an upstream discovered in ZooKeeper gets traffic; closed registration leaves', async () => {
  const up = await startUpstream();
  const gw = await startGateway(simpleConfig([], {}, { targets: [], discovery: { type: 'zookeeper', servers: [zk.hosts], path: '/real_server', emptyGrace: '0s' } }));
  const reg = await registerZookeeper({ servers: [zk.hosts], path: '/real_server' }, { address: `127.0.0.1:${up.port}` });
  try {
    const status = await waitFor(async () => {
      const r = await fetch(gw.url()).catch(() => undefined);
      return r?.status === 200 ? r.status : undefined;
    }, 'traffic reaches the registered upstream');
    assert.equal(status, 200);
    await reg.close();
    await waitFor(async () => {
      const r = await fetch(gw.url()).catch(() => undefined);
      return r !== undefined && r.status >= 500 ? true : undefined;
    }, 'no target once the registration is closed');
  } finally {
    await reg.close();
    await gw.close();
    await up.close();
  }
});
