import { validateConfig } from '../../src/config/load.js';
import { formatHostPort } from '../../src/net/address.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';

export interface TestGateway {
  gateway: Gateway;
  /** Base URL of a listener, e.g. http://127.0.0.1:43121 */
  url(listener?: string): string;
  /** Validates and applies another document; throws on validation errors, returns the apply result. */
  reload(doc: unknown): ReturnType<Gateway['apply']>;
  close(): Promise<void>;
}

/**
 * Starts a real gateway in this process from a config object (as it would
 * be parsed from YAML). Listeners should use port 0; `url()` tells the port.
 * `logger` is the gateway's own log (silent unless given).
 */
export async function startGateway(doc: unknown, logger: Logger = createLogger('silent')): Promise<TestGateway> {
  const loaded = validateConfig(doc);
  if (!loaded.ok) throw new Error(`invalid test config: ${JSON.stringify(loaded.errors)}`);
  const gateway = new Gateway(logger);
  const result = await gateway.apply(loaded.config);
  if (!result.ok) throw new Error(result.error);
  return {
    gateway,
    url(listener = 'web') {
      const a = gateway.listenerAddress(listener);
      if (!a) throw new Error(`no listener ${listener}`);
      return `http://${formatHostPort(a)}`;
    },
    reload(next: unknown) {
      const l = validateConfig(next);
      if (!l.ok) throw new Error(`invalid test config: ${JSON.stringify(l.errors)}`);
      return gateway.apply(l.config);
    },
    close: () => gateway.stop(1000),
  };
}

/** A one-listener, one-upstream, one-route document; override parts with `extra`. */
export function simpleConfig(targets: string[], route: Record<string, unknown> = {}, upstream: Record<string, unknown> = {}, listener: Record<string, unknown> = {}) {
  return {
    listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false, ...listener }],
    upstreams: [{ name: 'up', targets: targets.map((address) => ({ address })), ...upstream }],
    routes: [{ name: 'r', listener: 'web', upstream: 'up', ...route }],
  };
}
