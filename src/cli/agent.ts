import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { agentConfigSchema, type AgentConfig } from '../config/schemas/agent.js';
import type { ConfigError } from '../config/errors.js';
import { loadDocument, readConfigText } from '../config/load.js';
import { createLogger } from '../observability/logger.js';
import { Agent } from '../tunnel/agent/agent.js';
import { startAgentAdmin } from '../tunnel/agent/admin.js';

/** Reads and validates an agent file: the config, or every error with its path. */
export function loadAgentFile(file: string): { ok: true; config: AgentConfig } | { ok: false; errors: ConfigError[] } {
  const text = readConfigText(file);
  if (typeof text !== 'string') return { ok: false, errors: [text] };
  const r = loadDocument(text, agentConfigSchema);
  return r.ok ? { ok: true, config: r.value } : r;
}

/**
 * `portico agent FILE`: exits 1 on a bad file (every error with its path);
 * otherwise runs until SIGTERM/SIGINT (exit 0). An unreachable gateway is
 * never a reason to exit (the agent retries with backoff), unless
 * `reconnect.maxAttempts` is set and reached (exit 1).
 */
export async function runAgent(file: string, printErrors: (errors: ConfigError[]) => void): Promise<number> {
  const loaded = loadAgentFile(file);
  if (!loaded.ok) {
    printErrors(loaded.errors);
    return 1;
  }
  let config = loaded.config;
  const logger = createLogger(config.log.level);
  if (config.tls.insecureSkipVerify) logger.warn({}, 'agent: tls.insecureSkipVerify is on: the gateway\'s certificate is NOT verified');
  const agent = new Agent(config, logger);
  // Signals are taken from the start: a SIGTERM or SIGHUP during the admin's bind must not kill the process.
  let stopWith: ((signal: string) => void) | null = null;
  let stopSignal: string | null = null;
  const onStop = (signal: string) => (stopWith !== null ? stopWith(signal) : (stopSignal ??= signal));
  process.once('SIGTERM', () => onStop('SIGTERM'));
  process.once('SIGINT', () => onStop('SIGINT'));
  let reloadNow: (why: string) => void = () => logger.warn({}, 'agent: SIGHUP before the agent started is ignored');
  process.on('SIGHUP', () => reloadNow('SIGHUP'));
  let admin: { close(): Promise<void>; address: string } | null = null;
  if (config.admin !== undefined) {
    try {
      admin = await startAgentAdmin(agent, config.admin);
    } catch (err) {
      process.stderr.write(`portico agent: cannot serve admin on ${config.admin.host}:${config.admin.port}: ${(err as Error).message}\n`);
      await agent.stop();
      return 1;
    }
  }
  agent.start();
  logger.info({ id: config.id, servers: config.servers.map((s) => `${s.host}:${s.port}`), services: config.services.map((s) => s.code), admin: admin?.address }, 'portico agent started');

  const reload = (why: string) => {
    const next = loadAgentFile(file);
    if (!next.ok) {
      logger.error({ file, why, errors: next.errors.map((e) => `${e.path}: ${e.message}`) }, 'agent reload refused: the file is invalid (the running services are kept)');
      return;
    }
    const before = config;
    config = next.config;
    logger.level = config.log.level;
    if (JSON.stringify(before.admin) !== JSON.stringify(config.admin)) logger.warn({ file }, 'agent: admin address changes apply at the next start (the current one keeps serving)');
    if (before.watch !== config.watch) logger.warn({ file }, 'agent: watch changes apply at the next start');
    agent.reload(config);
    logger.info({ file, why, services: config.services.map((s) => s.code) }, 'agent reloaded');
  };
  reloadNow = reload;
  let watcher: FSWatcher | null = null;
  let debounce: NodeJS.Timeout | null = null;
  if (config.watch) {
    // The directory is watched, not the file: an editor or a config tool that
    // replaces the file (write a temp file, rename it over) would leave a
    // watch on the old file's inode deaf to every later change.
    const name = basename(file);
    try {
      watcher = watch(dirname(resolve(file)), (_event, changed) => {
        if (changed !== null && changed !== name) return;
        if (debounce !== null) clearTimeout(debounce);
        debounce = setTimeout(() => {
          debounce = null;
          reload('file changed');
        }, 200);
      });
      watcher.on('error', (err) => logger.warn({ file, error: err.message }, 'agent: the file watch failed; SIGHUP still reloads'));
    } catch (err) {
      logger.warn({ file, error: (err as Error).message }, 'agent: cannot watch the file; SIGHUP still reloads');
    }
  }

  return new Promise<number>((resolve) => {
    // Giving up stops the health checks and the admin too, so the process can exit.
    agent.onGiveUp = () => {
      watcher?.close();
      if (debounce !== null) clearTimeout(debounce);
      void Promise.all([agent.stop(), admin?.close()]).finally(() => resolve(1));
    };
    const stop = (signal: string) => {
      logger.info({ signal }, 'agent stopping');
      watcher?.close();
      if (debounce !== null) clearTimeout(debounce);
      void Promise.all([agent.stop(), admin?.close()]).finally(() => resolve(0));
    };
    stopWith = stop;
    if (stopSignal !== null) stop(stopSignal);
  });
}
