import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { registerEtcd } from '../../src/discovery/register-etcd.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { simpleConfig, startGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd.stop();
});

for (const emptyGrace of [0, 60_000]) {
  test(`an upstream discovered in etcd gets traffic once registered; revoked -> ${emptyGrace === 0 ? '503' : 'last targets kept within emptyGrace'}`, async () => {
    const prefix = `/gw${emptyGrace}`;
    const upstream = await startUpstream();
    const address = `127.0.0.1:${upstream.port}`;
    const gw = await startGateway(simpleConfig([], {}, { targets: undefined, discovery: { type: 'etcd', endpoints: [etcd.url], prefix, emptyGrace } }));
    try {
      const reg = await registerEtcd({ endpoints: [etcd.url], prefix }, { address });
      await waitFor(async () => ((await send(gw.url())).status === 200 ? true : undefined), 'traffic to the registered upstream');
      await reg.close();
      if (emptyGrace === 0) {
        await waitFor(async () => ((await send(gw.url())).status === 503 ? true : undefined), '503 once revoked');
      } else {
        await new Promise((r) => setTimeout(r, 1_000));
        assert.equal((await send(gw.url())).status, 200);
      }
    } finally {
      await gw.close();
      await upstream.close();
    }
  });
}
