import { createHash, timingSafeEqual, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { IpSet } from '../net/ip-set.js';
import type { ConsumerConfig, TokenAlgorithm } from '../config/schemas/consumers.js';

const MASK = '******';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** A copy of a consumer's config that is safe to print: secrets and keys masked. */
export function maskConsumer(config: ConsumerConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  if (config.secret !== undefined) out.secret = MASK;
  if (config.keys !== undefined) out.keys = config.keys.map(() => MASK);
  return out;
}

/**
 * A compiled consumer (tenant/app). Its secret is kept only as a SHA-256
 * digest for comparisons; `config` still holds it (for quota readers), so
 * printing a consumer (JSON.stringify, util.inspect, a logger) goes through
 * `toJSON`/`inspect`, which mask it.
 */
export class Consumer {
  readonly id: string;
  readonly config: ConsumerConfig;
  /** Route names this consumer may use, or null for all. */
  readonly routes: ReadonlySet<string> | null;
  /** Client addresses this consumer may call from, or null for anywhere. */
  readonly ipAllow: IpSet | null;
  readonly #secretDigest: Buffer | null;

  constructor(config: ConsumerConfig) {
    this.id = config.id;
    this.config = config;
    this.routes = config.routes === undefined ? null : new Set(config.routes);
    this.ipAllow = config.ipAllow === undefined ? null : new IpSet(config.ipAllow);
    this.#secretDigest = config.secret === undefined ? null : digest(config.secret);
  }

  get hasSecret(): boolean {
    return this.#secretDigest !== null;
  }

  /** Compares `presented` with the secret in constant time (over SHA-256 digests, so the length does not leak). */
  verifySecret(presented: string): boolean {
    const d = digest(presented);
    if (this.#secretDigest === null) {
      timingSafeEqual(d, DUMMY);
      return false;
    }
    return timingSafeEqual(d, this.#secretDigest);
  }

  toJSON(): Record<string, unknown> {
    return maskConsumer(this.config);
  }

  [inspect.custom](): string {
    return `Consumer ${inspect(maskConsumer(this.config))}`;
  }
}

const DUMMY = digest('portico:no-such-consumer');

/** A key that verifies tokens issued by one of this snapshot's token endpoints. */
export interface TokenEndpointKey {
  readonly issuer: string;
  readonly algorithm: TokenAlgorithm;
  /** The HS256 secret, or the public half of the RS256/ES256 signing key. */
  readonly key: KeyObject;
  /** The `kid` header the endpoint writes (RS256/ES256: the JWK thumbprint), if any. */
  readonly kid: string | undefined;
}

/**
 * The consumers of one snapshot with their lookups precomputed: by id, by
 * API key (keyed by the key's SHA-256, so a lookup's timing says nothing
 * about the key's characters), by JWT issuer and by client-certificate
 * name (`tlsSubjects`). The snapshot's token endpoints register their
 * verification keys here when they are compiled, so `jwt-auth` can verify
 * the tokens they issue.
 */
export class ConsumerRegistry {
  private readonly byId = new Map<string, Consumer>();
  private readonly byKey = new Map<string, Consumer>();
  private readonly byIss = new Map<string, Consumer>();
  private readonly bySubject = new Map<string, Consumer>();
  private readonly endpoints: TokenEndpointKey[] = [];

  constructor(configs: readonly ConsumerConfig[]) {
    for (const c of configs) {
      const consumer = new Consumer(c);
      this.byId.set(c.id, consumer);
      for (const k of c.keys ?? []) this.byKey.set(digest(k).toString('hex'), consumer);
      for (const iss of c.jwtIssuers ?? []) this.byIss.set(iss, consumer);
      for (const s of c.tlsSubjects ?? []) this.bySubject.set(s, consumer);
    }
  }

  get(id: string): Consumer | undefined {
    return this.byId.get(id);
  }

  all(): IterableIterator<Consumer> {
    return this.byId.values();
  }

  get size(): number {
    return this.byId.size;
  }

  /** The consumer owning API key `key`. */
  byApiKey(key: string): Consumer | undefined {
    return this.byKey.get(digest(key).toString('hex'));
  }

  /** The consumer that lists `iss` in its `jwtIssuers`. */
  byIssuer(iss: string): Consumer | undefined {
    return this.byIss.get(iss);
  }

  /**
   * The consumer identified by a client certificate: the first of `names`
   * (its CN, then its subjectAltName values) that a consumer lists in
   * `tlsSubjects`.
   */
  byTlsSubject(names: readonly string[]): Consumer | undefined {
    for (const n of names) {
      const c = this.bySubject.get(n);
      if (c !== undefined) return c;
    }
    return undefined;
  }

  /**
   * The consumer with this id and secret, or undefined. The secret is
   * compared in constant time, and an unknown id costs the same comparison.
   */
  authenticate(id: string, secret: string): Consumer | undefined {
    const c = this.byId.get(id);
    if (c === undefined) {
      timingSafeEqual(digest(secret), DUMMY);
      return undefined;
    }
    return c.verifySecret(secret) ? c : undefined;
  }

  /** Called by the token endpoints of this snapshot as they are compiled. */
  registerTokenEndpoint(key: TokenEndpointKey): void {
    this.endpoints.push(key);
  }

  /** The verification keys of this snapshot's token endpoints. */
  tokenEndpoints(): readonly TokenEndpointKey[] {
    return this.endpoints;
  }

  toJSON(): Record<string, unknown>[] {
    return [...this.byId.values()].map((c) => c.toJSON());
  }

  [inspect.custom](): string {
    return `ConsumerRegistry ${inspect(this.toJSON())}`;
  }
}
