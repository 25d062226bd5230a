import { createPublicKey, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { bool, cidr, duration, headerName, int, number } from '../values.js';
import { normalizePem, TOKEN_ALGORITHMS, type TokenAlgorithm } from './consumers.js';

// Option schemas of the route middlewares (`middlewares: [{ <name>: <options> }]`),
// one block per middleware, in the order of MIDDLEWARE_SCHEMAS below. The
// implementations (src/middlewares/<name>.ts) import their option types from here.

/** `rate-limit:` options. */
export const rateLimitSchema = z
  .strictObject({
    /** Tokens added per second (requests per second, sustained). */
    rate: number(0, 1e12, true),
    /** Bucket size: requests that may pass at once after a quiet period. Default ceil(rate). */
    burst: int(1, 1e12).optional(),
    key: z
      .string()
      .regex(/^(route|ip|consumer|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/, 'must be route, ip, consumer or header:NAME')
      .default('route'),
    mode: z.enum(['reject', 'delay'], 'must be reject or delay').default('reject'),
    /** delay mode: the longest a request is held waiting for its token. */
    maxDelay: duration(0, 60_000, '0ms to 1m').default(1000),
  })
  .transform((o) => ({ ...o, burst: o.burst ?? Math.max(1, Math.ceil(o.rate)) }));

export type RateLimitOptions = z.output<typeof rateLimitSchema>;

/** `basic-auth:` options. */
export const basicAuthOptions = z.strictObject({
  /** The realm named in `WWW-Authenticate`. */
  realm: z
    .string('must be a string')
    .regex(/^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,128}$/, 'must be 1-128 printable ASCII characters without " or \\')
    .default('portico'),
  /** Remove the Authorization header (it holds the consumer's secret) from the upstream request. */
  hideCredentials: bool.default(true),
});

export type BasicAuthOptions = z.output<typeof basicAuthOptions>;

const percent = number(0, 100).default(100);

/** `fault-injection:` options. */
export const faultInjectionOptions = z
  .strictObject({
    /** Answer with `status` instead of proxying, for `percent` % of the requests. */
    abort: z.strictObject({ percent, status: int(200, 599) }).optional(),
    /** Wait `duration` before proxying, for `percent` % of the requests. */
    delay: z.strictObject({ percent, duration: duration(1, 600_000, '1ms to 10m') }).optional(),
    /** Only requests carrying this header are affected. */
    header: headerName.transform((h) => h.toLowerCase()).optional(),
  })
  .refine((o) => o.abort !== undefined || o.delay !== undefined, 'needs abort, delay or both');

export type FaultInjectionOptions = z.output<typeof faultInjectionOptions>;

/** `ip-restriction:` options. */
export const ipRestrictionOptions = z
  .strictObject({
    /** Only these addresses/CIDRs may pass (when set). */
    allow: z.array(cidr).optional(),
    /** These addresses/CIDRs never pass; deny wins over allow. */
    deny: z.array(cidr).optional(),
  })
  .refine((o) => (o.allow?.length ?? 0) + (o.deny?.length ?? 0) > 0, 'needs a non-empty allow or deny list');

export type IpRestrictionOptions = z.output<typeof ipRestrictionOptions>;

/** `key-auth:` options. */
export const keyAuthOptions = z.strictObject({
  /** Header carrying the API key. */
  header: headerName.transform((h) => h.toLowerCase()).default('x-api-key'),
  /** Query parameter carrying the API key (looked at when the header is absent); off by default. */
  query: z
    .string('must be a string')
    .regex(/^[A-Za-z0-9_.~-]{1,64}$/, 'must be 1-64 letters, digits, "_", ".", "~" or "-"')
    .optional(),
});

export type KeyAuthOptions = z.output<typeof keyAuthOptions>;

/** `mtls-auth:` options. */
export const mtlsAuthOptions = z.strictObject({
  /** Certificate names (CN or any subjectAltName value) allowed on this route; absent = any verified certificate. */
  subjects: z
    .array(z.string('must be a string').min(1, 'must not be empty').max(1024, 'must be at most 1024 characters'))
    .min(1, 'must list at least one name (or leave subjects out to accept any verified certificate)')
    .optional(),
  /** `optional`: identify the consumer listing one of the certificate's names in `tlsSubjects` when there is one; `required`: 403 when none does. */
  consumer: z.enum(['optional', 'required'], 'must be optional or required').default('optional'),
  /** Send the verified certificate's subject CN upstream in this header (a client-sent copy is always removed). */
  forwardHeader: headerName.transform((h) => h.toLowerCase()).optional(),
});

export type MtlsAuthOptions = z.output<typeof mtlsAuthOptions>;

function publicKeyProblem(pem: string): string | undefined {
  let key: KeyObject;
  try {
    key = createPublicKey(normalizePem(pem));
  } catch {
    return 'must be a PEM public key (-----BEGIN PUBLIC KEY----- …)';
  }
  if (key.asymmetricKeyType === 'rsa') {
    return (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048 ? undefined : 'must be an RSA key of at least 2048 bits';
  }
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return undefined;
  return 'must be an RSA (RS256) or EC P-256 (ES256) public key';
}

/** The JWS algorithm a (valid) public key verifies. */
export function publicKeyAlgorithm(key: KeyObject): TokenAlgorithm {
  return key.asymmetricKeyType === 'rsa' ? 'RS256' : 'ES256';
}

const stringOrList = z.union([z.string().min(1, 'must not be empty'), z.array(z.string().min(1, 'must not be empty')).min(1, 'must not be empty')]);

/** `jwt-auth:` options. */
export const jwtAuthOptions = z
  .strictObject({
    /** Accepted `alg` values; default: what the configured keys can verify. */
    algorithms: z.array(z.enum(TOKEN_ALGORITHMS, 'must be HS256, RS256 or ES256')).min(1, 'must list at least one algorithm').optional(),
    /** HS256 shared secret (e.g. the token endpoint's signingKey). */
    signingKey: z.string('must be a string').refine((v) => Buffer.byteLength(v) >= 32, 'must be at least 32 bytes (256 bits) for HS256').optional(),
    /** PEM public key for RS256 (RSA ≥ 2048 bits) or ES256 (P-256). */
    publicKey: z.string('must be a string').superRefine((v, ctx) => {
      const problem = publicKeyProblem(v);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }).optional(),
    /** A JSON Web Key Set URL (RS256/ES256 keys, chosen by `kid`). */
    jwksUrl: z
      .string('must be a URL')
      .refine((v) => {
        try {
          const u = new URL(v);
          return u.protocol === 'http:' || u.protocol === 'https:';
        } catch {
          return false;
        }
      }, 'must be an http:// or https:// URL')
      .optional(),
    /** How long one JWKS fetch may take. */
    jwksTimeout: duration(100, 60_000, '100ms to 60s').default(5_000),
    /** Clock skew allowed on `exp` and `nbf`. */
    leeway: duration(0, 300_000, '0s to 5m').default(30_000),
    /** Required `aud` (one of these). */
    audience: stringOrList.optional(),
    /** Required `iss` (one of these). */
    issuer: stringOrList.optional(),
    /** Header carrying the token; for `authorization` the `Bearer` scheme is required. */
    header: headerName.transform((h) => h.toLowerCase()).default('authorization'),
    /** Also accept HS256 tokens a consumer signs with its own `secret` (`iss` or `sub` = the consumer id). */
    consumerSecrets: bool.default(false),
    /** Remove the token header from the upstream request. */
    hideCredentials: bool.default(false),
  })
  .superRefine((o, ctx) => {
    if (o.algorithms === undefined) return;
    const explicit = o.signingKey !== undefined || o.publicKey !== undefined || o.jwksUrl !== undefined;
    if (!explicit) return;
    const pub = o.publicKey !== undefined && publicKeyProblem(o.publicKey) === undefined ? publicKeyAlgorithm(createPublicKey(normalizePem(o.publicKey))) : undefined;
    o.algorithms.forEach((alg, i) => {
      const ok = alg === 'HS256' ? o.signingKey !== undefined || o.consumerSecrets : pub === alg || o.jwksUrl !== undefined;
      if (!ok) {
        const need = alg === 'HS256' ? 'signingKey (or consumerSecrets: true)' : `a ${alg === 'RS256' ? 'RSA' : 'P-256'} publicKey or jwksUrl`;
        ctx.addIssue({ code: 'custom', path: ['algorithms', i], message: `${alg} needs ${need}` });
      }
    });
  });

export type JwtAuthOptions = z.output<typeof jwtAuthOptions>;

/**
 * Option schemas of the middlewares a route can list under `middlewares:`,
 * by name. Each entry is `{ <name>: <options> }`. The runtime factories
 * are in src/middlewares/registry.ts; the two maps have the same keys.
 */
export const MIDDLEWARE_SCHEMAS: Record<string, z.ZodType> = {
  'rate-limit': rateLimitSchema,
  'jwt-auth': jwtAuthOptions,
  'key-auth': keyAuthOptions,
  'basic-auth': basicAuthOptions,
  'mtls-auth': mtlsAuthOptions,
  'ip-restriction': ipRestrictionOptions,
  'fault-injection': faultInjectionOptions,
};
