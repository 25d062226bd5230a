/**
 * The config sections the admin API serves as resources: each a list in
 * the document whose items are identified by one key.
 */
export const RESOURCE_KINDS = {
  listeners: { key: 'name', one: 'listener' },
  routes: { key: 'name', one: 'route' },
  upstreams: { key: 'name', one: 'upstream' },
  consumers: { key: 'id', one: 'consumer' },
  certificates: { key: 'name', one: 'certificate' },
} as const;

export type ResourceKind = keyof typeof RESOURCE_KINDS;

export function isResourceKind(v: string): v is ResourceKind {
  return Object.prototype.hasOwnProperty.call(RESOURCE_KINDS, v);
}

/** The config's name rule (listeners, routes, upstreams, certificates) and consumer ids. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const CONSUMER_ID = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/;

/** Whether `name` may identify a `kind` item (so it is also safe in a URL path segment and a log line). */
export function validName(kind: ResourceKind, name: string): boolean {
  return (kind === 'consumers' ? CONSUMER_ID : NAME).test(name);
}

/** What refers to a resource: the referring item and the document path of the reference. */
export interface Referrer {
  kind: ResourceKind;
  name: string;
  path: string;
}

type Doc = Record<string, unknown>;

function items(doc: Doc, section: string): Record<string, unknown>[] {
  const v = doc[section];
  return Array.isArray(v) ? v.map((x) => (x !== null && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : {})) : [];
}

/**
 * Every place in the raw document that names `kind` item `name`: a delete
 * (or rename) of it would leave these dangling.
 */
export function referrersOf(doc: Doc, kind: ResourceKind, name: string): Referrer[] {
  const out: Referrer[] = [];
  const listeners = items(doc, 'listeners');
  const routes = items(doc, 'routes');
  const label = (v: unknown) => (typeof v === 'string' ? v : '?');
  if (kind === 'listeners') {
    routes.forEach((r, i) => {
      if (r.listener === name) out.push({ kind: 'routes', name: label(r.name), path: `routes[${i}].listener` });
    });
    listeners.forEach((l, i) => {
      const http = l.http as { listener?: unknown } | undefined;
      if (http?.listener === name) out.push({ kind: 'listeners', name: label(l.name), path: `listeners[${i}].http.listener` });
    });
  } else if (kind === 'upstreams') {
    routes.forEach((r, i) => {
      if (r.upstream === name) out.push({ kind: 'routes', name: label(r.name), path: `routes[${i}].upstream` });
    });
    listeners.forEach((l, i) => {
      if (l.upstream === name) out.push({ kind: 'listeners', name: label(l.name), path: `listeners[${i}].upstream` });
      const sni = l.routes;
      if (Array.isArray(sni)) {
        sni.forEach((r: unknown, j) => {
          if ((r as { upstream?: unknown } | null)?.upstream === name) out.push({ kind: 'listeners', name: label(l.name), path: `listeners[${i}].routes[${j}].upstream` });
        });
      }
    });
  } else if (kind === 'routes') {
    items(doc, 'consumers').forEach((c, i) => {
      const names = c.routes;
      if (Array.isArray(names)) names.forEach((r, j) => r === name && out.push({ kind: 'consumers', name: label(c.id), path: `consumers[${i}].routes[${j}]` }));
    });
  } else if (kind === 'certificates') {
    listeners.forEach((l, i) => {
      const certs = (l.tls as { certificates?: unknown } | undefined)?.certificates;
      if (Array.isArray(certs)) {
        certs.forEach((c: unknown, j) => {
          if ((c as { certificate?: unknown } | null)?.certificate === name) out.push({ kind: 'listeners', name: label(l.name), path: `listeners[${i}].tls.certificates[${j}].certificate` });
        });
      }
    });
  }
  return out;
}

/** Whether a validation error is a reference to something the document does not have. */
export function isDanglingReference(message: string): boolean {
  return /^no (listener|upstream|route|certificate) named /.test(message);
}
