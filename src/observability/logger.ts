import pino, { type Logger } from 'pino';

/**
 * The gateway's own log (start, reload, errors): JSON lines on stdout.
 * Access logs are separate (access-log.ts). Never pass secrets here; the
 * `redact` list is a second line of defence for config objects.
 */
export function createLogger(level = 'info'): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['token', '*.apiKey', 'config.admin.token', '*.secret', '*.password', '*.signingKey', '*.keys', '*.token', 'config.admin.apiKey'], censor: '[redacted]' },
  });
}

export type { Logger };
