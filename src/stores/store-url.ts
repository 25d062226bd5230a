import { parseHostPort } from '../net/address.js';

/** A config store as the CLI names it. */
export type StoreLocation =
  | { readonly type: 'etcd'; readonly endpoints: readonly string[]; readonly prefix: string }
  | { readonly type: 'zookeeper'; readonly servers: readonly string[]; readonly path: string };

export const STORE_URL_FORMS = 'etcd://HOST:PORT[,HOST:PORT…][/PREFIX] or zookeeper://HOST:PORT[,HOST:PORT…][/PATH]';

/**
 * Reads `etcd://127.0.0.1:2379/portico` or `zookeeper://h1:2181,h2:2181/portico`
 * (the prefix or path defaults to /portico; etcd endpoints are dialled over
 * http). Returns the location or why the text is not one.
 */
export function parseStoreUrl(text: string): StoreLocation | { error: string } {
  const m = /^(etcd|zookeeper|zk):\/\/([^/]+)(\/.*)?$/.exec(text);
  if (m === null) return { error: `"${text}" is not a store URL: ${STORE_URL_FORMS}` };
  const hosts = m[2]!.split(',');
  const bad = hosts.find((h) => parseHostPort(h) === undefined || parseHostPort(h)!.port === 0);
  if (bad !== undefined) return { error: `"${bad}" is not host:port in ${text}` };
  const path = m[3] === undefined || m[3] === '/' ? '/portico' : m[3];
  if (!/^(\/[^/\s]+)+$/.test(path)) return { error: `"${path}" is not an absolute path such as /portico (no trailing "/", no empty part)` };
  if (m[1] === 'etcd') return { type: 'etcd', endpoints: hosts.map((h) => `http://${h}`), prefix: path };
  return { type: 'zookeeper', servers: hosts, path };
}
