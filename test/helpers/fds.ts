import { readdirSync } from 'node:fs';
import { waitFor } from './wait.js';

/** File descriptors this process has open now (Linux: /proc/self/fd). */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * Waits until this process's open descriptors are back to at most
 * `baseline + slack` (sockets close asynchronously), and returns the count.
 * Fails with the count it saw when they do not come back within `timeoutMs`.
 */
export async function fdsSettle(baseline: number, slack = 2, timeoutMs = 5000): Promise<number> {
  let last = openFds();
  try {
    await waitFor(() => {
      last = openFds();
      return last <= baseline + slack ? true : undefined;
    }, 'file descriptors back to the baseline', timeoutMs);
  } catch {
    throw new Error(`file descriptors: ${last} open, ${baseline} before (slack ${slack})`);
  }
  return last;
}
