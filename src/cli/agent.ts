import { watch, type FSWatcher } from 'node:fs';
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
  let admin: { close(): Promise<void>; address: string } | null = null;
  if (config.admin !== undefined) {
    try {
      admin = await startAgentAdmin(agent, config.admin);
    } catch (err) {
      process.stderr.write(`portico agent: cannot serve admin on ${config.admin.host}:${config.admin.port}: ${(err as Error).message}\n`);
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
    config = next.config;
    logger.level = config.log.level;
    agent.reload(config);
  };
  process.on('SIGHUP', () => reload('SIGHUP'));
  let watcher: FSWatcher | null = null;
  if (config.watch) {
    let timer: NodeJS.Timeout | null = null;
    try {
      watcher = watch(file, () => {
        if (timer !== null) clearTimeout(timer);
        timer = setTimeout(() => reload('file changed'), 200);
      });
      watcher.on('error', () => undefined);
    } catch (err) {
      logger.warn({ file, error: (err as Error).message }, 'agent: cannot watch the file; SIGHUP still reloads');
    }
  }

  return new Promise<number>((resolve) => {
    agent.onGiveUp = () => resolve(1);
    const stop = (signal: string) => {
      logger.info({ signal }, 'agent stopping');
      watcher?.close();
      void Promise.all([agent.stop(), admin?.close()]).finally(() => resolve(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
