// How a config document is found wrong: one ConfigError per problem, and the
// one way they are printed (the CLI, and a source refusing a reload).

/** One problem in a config document: where (`routes[0].match.path`) and why. */
export interface ConfigError {
  path: string;
  message: string;
  /** Where in the text, for problems found while reading it (YAML syntax, aliases): 1-based line and column, and a code frame. */
  line?: number;
  column?: number;
  frame?: string;
}

export class ConfigInvalidError extends Error {
  readonly errors: ConfigError[];
  constructor(source: string, errors: ConfigError[]) {
    super(`${source}: invalid config\n${formatConfigErrors(source, errors)}`);
    this.name = 'ConfigInvalidError';
    this.errors = errors;
  }
}

/**
 * Config errors as printed by the CLI and logged on a refused reload, one
 * per line: `path: message`, or for a problem in the text itself
 * `source:line:column: message` followed by a code frame.
 */
export function formatConfigErrors(source: string, errors: readonly ConfigError[]): string {
  return errors
    .map((e) => (e.line !== undefined ? `${source}:${e.line}:${e.column ?? 1}: ${e.message}${e.frame ? `\n${e.frame}` : ''}` : `${e.path}: ${e.message}`))
    .join('\n');
}
