/**
 * Calendar days in a time zone, for day-based counters (consumer `qpd`):
 * which day an instant falls on, and the instants where that day starts and
 * ends. Found by bisection on Intl's own calendar, so DST changes, odd
 * offsets and days of 23 or 25 hours come out right without a time zone
 * table of our own. Callers cache the window until `end`.
 */
export interface DayWindow {
  /** The local date, YYYY-MM-DD. */
  day: string;
  /** First epoch ms of that local day. */
  start: number;
  /** First epoch ms of the next local day. */
  end: number;
}

const HOUR = 3_600_000;
/** Longer than any local day (DST adds at most 1 h; 2 h for a few historic zones). */
const SPAN = 27 * HOUR;
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', calendar: 'gregory', numberingSystem: 'latn' });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The local date of `t` (epoch ms) in `timeZone`, as YYYY-MM-DD. */
export function localDate(t: number, timeZone: string): string {
  let y = '';
  let m = '';
  let d = '';
  for (const p of formatter(timeZone).formatToParts(t)) {
    if (p.type === 'year') y = p.value;
    else if (p.type === 'month') m = p.value;
    else if (p.type === 'day') d = p.value;
  }
  return `${y}-${m}-${d}`;
}

export function dayWindow(now: number, timeZone: string): DayWindow {
  const day = localDate(now, timeZone);
  // end: the first ms after `now` on another date.
  let lo = now;
  let hi = now + SPAN;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (localDate(mid, timeZone) === day) lo = mid;
    else hi = mid;
  }
  const end = hi;
  // start: the first ms on this date.
  lo = now - SPAN;
  hi = now;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (localDate(mid, timeZone) === day) hi = mid;
    else lo = mid;
  }
  return { day, start: hi, end };
}
