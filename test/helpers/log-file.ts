import { existsSync, readFileSync } from 'node:fs';

/** The JSON lines of a log file written so far (none while the file does not exist yet). */
export function logLines(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
