import { createHash, timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';
import { IpSet } from '../http/ip.js';
const MASK = '******';
function digest(text) {
    return createHash('sha256').update(text, 'utf8').digest();
}
/** A copy of a consumer's config that is safe to print: secrets and keys masked. */
export function maskConsumer(config) {
    const out = { ...config };
    if (config.secret !== undefined)
        out.secret = MASK;
    if (config.keys !== undefined)
        out.keys = config.keys.map(() => MASK);
    return out;
}
/**
 * A compiled consumer (tenant/app). Its secret is kept only as a SHA-256
 * digest for comparisons; `config` still holds it (for quota readers), so
 * printing a consumer (JSON.stringify, util.inspect, a logger) goes through
 * `toJSON`/`inspect`, which mask it.
 */
export class Consumer {
    id;
    config;
    /** Route names this consumer may use, or null for all. */
    routes;
    /** Client addresses this consumer may call from, or null for anywhere. */
    ipAllow;
    #secretDigest;
    constructor(config) {
        this.id = config.id;
        this.config = config;
        this.routes = config.routes === undefined ? null : new Set(config.routes);
        this.ipAllow = config.ipAllow === undefined ? null : new IpSet(config.ipAllow);
        this.#secretDigest = config.secret === undefined ? null : digest(config.secret);
    }
    get hasSecret() {
        return this.#secretDigest !== null;
    }
    /** Compares `presented` with the secret in constant time (over SHA-256 digests, so the length does not leak). */
    verifySecret(presented) {
        const d = digest(presented);
        if (this.#secretDigest === null) {
            timingSafeEqual(d, DUMMY);
            return false;
        }
        return timingSafeEqual(d, this.#secretDigest);
    }
    toJSON() {
        return maskConsumer(this.config);
    }
    [inspect.custom]() {
        return `Consumer ${inspect(maskConsumer(this.config))}`;
    }
}
const DUMMY = digest('portico:no-such-consumer');
/**
 * The consumers of one snapshot with their lookups precomputed: by id, by
 * API key (keyed by the key's SHA-256, so a lookup's timing says nothing
 * about the key's characters) and by JWT issuer. The snapshot's token
 * endpoints register their verification keys here when they are compiled,
 * so `jwt-auth` can verify the tokens they issue.
 */
export class ConsumerRegistry {
    byId = new Map();
    byKey = new Map();
    byIss = new Map();
    endpoints = [];
    constructor(configs) {
        for (const c of configs) {
            const consumer = new Consumer(c);
            this.byId.set(c.id, consumer);
            for (const k of c.keys ?? [])
                this.byKey.set(digest(k).toString('hex'), consumer);
            for (const iss of c.jwtIssuers ?? [])
                this.byIss.set(iss, consumer);
        }
    }
    get(id) {
        return this.byId.get(id);
    }
    all() {
        return this.byId.values();
    }
    get size() {
        return this.byId.size;
    }
    /** The consumer owning API key `key`. */
    byApiKey(key) {
        return this.byKey.get(digest(key).toString('hex'));
    }
    /** The consumer that lists `iss` in its `jwtIssuers`. */
    byIssuer(iss) {
        return this.byIss.get(iss);
    }
    /**
     * The consumer with this id and secret, or undefined. The secret is
     * compared in constant time, and an unknown id costs the same comparison.
     */
    authenticate(id, secret) {
        const c = this.byId.get(id);
        if (c === undefined) {
            timingSafeEqual(digest(secret), DUMMY);
            return undefined;
        }
        return c.verifySecret(secret) ? c : undefined;
    }
    /** Called by the token endpoints of this snapshot as they are compiled. */
    registerTokenEndpoint(key) {
        this.endpoints.push(key);
    }
    /** The verification keys of this snapshot's token endpoints. */
    tokenEndpoints() {
        return this.endpoints;
    }
    toJSON() {
        return [...this.byId.values()].map((c) => c.toJSON());
    }
    [inspect.custom]() {
        return `ConsumerRegistry ${inspect(this.toJSON())}`;
    }
}
//# sourceMappingURL=consumer.js.map