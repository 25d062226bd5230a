import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { HeaderMatchConfig, RouteConfig } from '../config/schema.js';
import { isIP } from 'node:net';
import { matchesSuffix } from '../net/host-pattern.js';
import { normalizeHost } from './host.js';

/**
 * A listener's router, built once per snapshot. Routes are ordered by
 * specificity and the first that matches wins:
 *   1. higher `priority`;
 *   2. host: exact > wildcard (longer suffix first) > any;
 *   3. path: exact > prefix (longer first) > regex > any;
 *   4. routes with `methods` before routes without;
 *   5. more header matches first;
 *   6. config order.
 * Requests whose host has exact-host routes scan a list made for that host;
 * all others scan the list of wildcard and host-less routes.
 */
export class Router<T> {
  private readonly byHost = new Map<string, Entry<T>[]>();
  private readonly generic: Entry<T>[];

  constructor(routes: readonly { config: RouteConfig; value: T }[]) {
    const entries: Entry<T>[] = [];
    routes.forEach(({ config, value }, order) => {
      const hosts = config.match.host === undefined ? [undefined] : [config.match.host].flat();
      for (const h of hosts) entries.push(makeEntry(config, value, h, order));
    });
    entries.sort(compareEntries);
    this.generic = entries.filter((e) => e.hostKind !== HOST_EXACT);
    for (const e of entries) {
      if (e.hostKind !== HOST_EXACT) continue;
      if (!this.byHost.has(e.host)) {
        this.byHost.set(e.host, entries.filter((x) => x.hostKind !== HOST_EXACT || x.host === e.host));
      }
    }
  }

  /** `host` must come from normalizeHost; `path` from splitTarget. */
  match(host: string, path: string, method: string, req: Pick<IncomingMessage, 'headers'>): T | undefined {
    const list = this.byHost.get(host) ?? this.generic;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      if (e.hostKind === HOST_WILDCARD && !matchesSuffix(e.host, host)) continue;
      if (!matchPath(e, path)) continue;
      if (e.methods !== null && !e.methods.has(method)) continue;
      if (e.headers !== null && !matchHeaders(e.headers, req.headers)) continue;
      return e.value;
    }
    return undefined;
  }
}

const HOST_ANY = 0;
const HOST_WILDCARD = 1;
const HOST_EXACT = 2;
const PATH_ANY = 0;
const PATH_REGEX = 1;
const PATH_PREFIX = 2;
const PATH_EXACT = 3;

type HeaderTest = [name: string, test: (v: string | undefined) => boolean];

interface Entry<T> {
  value: T;
  order: number;
  priority: number;
  hostKind: number;
  /** Exact host, or for wildcards the suffix including its dot (`.example.com`). */
  host: string;
  pathKind: number;
  /** Exact path, or prefix without a trailing slash ('' for `/`). */
  pathText: string;
  pathRegex: RegExp | null;
  methods: Set<string> | null;
  headers: HeaderTest[] | null;
}

function makeEntry<T>(config: RouteConfig, value: T, host: string | undefined, order: number): Entry<T> {
  const m = config.match;
  let hostKind = HOST_ANY;
  let hostText = '';
  if (host !== undefined && host !== '*') {
    if (host.startsWith('*.')) {
      hostKind = HOST_WILDCARD;
      hostText = normalizeHost(host.slice(1).replace(/^\[|\]$/g, ''));
      hostText = '.' + hostText.replace(/^\./, '');
    } else {
      hostKind = HOST_EXACT;
      // A bare IPv6 literal is bracketed so normalizeHost does not take its last group for a port.
      hostText = normalizeHost(isIP(host) === 6 ? `[${host}]` : host);
    }
  }
  let pathKind = PATH_ANY;
  let pathText = '';
  let pathRegex: RegExp | null = null;
  if (m.path !== undefined) {
    pathKind = PATH_EXACT;
    pathText = m.path;
  } else if (m.pathPrefix !== undefined) {
    pathKind = PATH_PREFIX;
    pathText = m.pathPrefix.replace(/\/+$/, '');
  } else if (m.pathRegex !== undefined) {
    pathKind = PATH_REGEX;
    pathRegex = new RegExp(m.pathRegex);
  }
  const headers = m.headers ? Object.entries(m.headers).map(([k, v]) => [k.toLowerCase(), headerTest(v)] as HeaderTest) : null;
  return {
    value,
    order,
    priority: config.priority,
    hostKind,
    host: hostText,
    pathKind,
    pathText,
    pathRegex,
    methods: m.methods ? new Set<string>(m.methods) : null,
    headers: headers && headers.length > 0 ? headers : null,
  };
}

function headerTest(m: HeaderMatchConfig): (v: string | undefined) => boolean {
  if (typeof m === 'string') return (v) => v === m;
  if ('regex' in m) {
    const re = new RegExp(m.regex);
    return (v) => v !== undefined && re.test(v);
  }
  return m.present ? (v) => v !== undefined : (v) => v === undefined;
}

function matchPath<T>(e: Entry<T>, path: string): boolean {
  switch (e.pathKind) {
    case PATH_ANY:
      return true;
    case PATH_EXACT:
      return path === e.pathText;
    case PATH_PREFIX: {
      // Segment boundary: `/users` matches `/users` and `/users/…`, not `/usersx`.
      const p = e.pathText;
      return path.startsWith(p) && (path.length === p.length || path.charCodeAt(p.length) === 47);
    }
    default:
      return e.pathRegex!.test(path);
  }
}

function matchHeaders(tests: HeaderTest[], headers: IncomingHttpHeaders): boolean {
  for (const [name, test] of tests) {
    const v = headers[name];
    if (!test(Array.isArray(v) ? v.join(', ') : v)) return false;
  }
  return true;
}

function compareEntries<T>(a: Entry<T>, b: Entry<T>): number {
  return (
    b.priority - a.priority ||
    b.hostKind - a.hostKind ||
    b.host.length - a.host.length ||
    b.pathKind - a.pathKind ||
    b.pathText.length - a.pathText.length ||
    Number(b.methods !== null) - Number(a.methods !== null) ||
    (b.headers?.length ?? 0) - (a.headers?.length ?? 0) ||
    a.order - b.order
  );
}
