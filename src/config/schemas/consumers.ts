import { createPrivateKey } from 'node:crypto';
import { z } from 'zod';
import { cidr, duration, int, number, ROUTE_NAME } from '../values.js';

/**
 * `consumers[]`: tenants/apps that call through the gateway. Credentials
 * (`secret`, `keys`, `jwtIssuers`, `tlsSubjects`), quotas (`qps`, `qpd`, enforced by
 * rate-limit) and where they may go (`routes`, `ipAllow`).
 */
export const consumerSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/, 'must be 1-128 letters, digits, "_", ".", "@" or "-"'),
  /** Client secret for basic-auth and the token endpoint (and, opt-in, for HS256 tokens the consumer signs itself). */
  secret: z.string('must be a string').min(8, 'must be at least 8 characters').max(1024, 'must be at most 1024 characters').optional(),
  /** API keys for key-auth. Unique across consumers. */
  keys: z
    .array(
      z
        .string('must be a string')
        .min(16, 'must be at least 16 characters')
        .max(512, 'must be at most 512 characters')
        .regex(/^[\x21-\x7e]+$/, 'must be visible ASCII without spaces'),
    )
    .optional(),
  /** JWT `iss` values that identify this consumer (jwt-auth). Unique across consumers. */
  jwtIssuers: z.array(z.string('must be a string').min(1, 'must not be empty').max(1024)).optional(),
  /**
   * Client-certificate names that identify this consumer (mtls-auth): a
   * certificate's subject CN or any of its subjectAltName values (DNS name,
   * URI such as spiffe://…, email, IP). Exact, case-sensitive; unique across consumers.
   */
  tlsSubjects: z
    .array(
      z
        .string('must be a string')
        .min(1, 'must not be empty')
        .max(1024, 'must be at most 1024 characters')
        .refine((v) => !/[\x00-\x1f\x7f]/.test(v), 'must not contain control characters'),
    )
    .min(1, 'must list at least one name (or leave tlsSubjects out)')
    .optional(),
  /** Requests per second allowed to this consumer (enforced by rate-limit). */
  qps: number(0, 1_000_000_000, true).optional(),
  /** Requests per day allowed to this consumer (enforced by rate-limit). */
  qpd: int(1, Number.MAX_SAFE_INTEGER).optional(),
  /** Route names this consumer may call; absent = every route. */
  routes: z.array(z.string().regex(ROUTE_NAME, 'must be a route name')).optional(),
  /** Client addresses this consumer may call from; absent = anywhere. */
  ipAllow: z.array(cidr).optional(),
});

export const TOKEN_ALGORITHMS = ['HS256', 'RS256', 'ES256'] as const;
export type TokenAlgorithm = (typeof TOKEN_ALGORITHMS)[number];

/** PEM text from an environment variable often arrives with literal `\n`s; turn them back into newlines. */
export function normalizePem(text: string): string {
  return text.includes('-----BEGIN') && !text.includes('\n') && text.includes('\\n') ? text.replace(/\\n/g, '\n') : text;
}

/** Why `pem` cannot sign `alg`, or undefined when it can. */
export function privateKeyProblem(pem: string, alg: 'RS256' | 'ES256'): string | undefined {
  let key;
  try {
    key = createPrivateKey(normalizePem(pem));
  } catch {
    return `must be a PEM private key for ${alg} (-----BEGIN PRIVATE KEY----- …)`;
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (alg === 'RS256') {
    if (key.asymmetricKeyType !== 'rsa') return `must be an RSA private key for RS256 (got ${key.asymmetricKeyType})`;
    if ((details.modulusLength ?? 0) < 2048) return 'must be an RSA key of at least 2048 bits';
  } else {
    if (key.asymmetricKeyType !== 'ec' || details.namedCurve !== 'prime256v1') return 'must be an EC P-256 private key for ES256';
  }
  return undefined;
}

/** A route's `token-endpoint:` (OAuth 2.0 client credentials, RFC 6749 §4.4). */
export const tokenEndpointSchema = z
  .strictObject({
    /** HS256: the shared secret (≥ 32 characters). RS256/ES256: a PEM private key. Never a constant: use `${ENV}`. */
    signingKey: z.string('must be a string (use ${ENV} to keep it out of the file)'),
    algorithm: z.enum(TOKEN_ALGORITHMS, 'must be HS256, RS256 or ES256').default('HS256'),
    /** Lifetime of the issued tokens. */
    ttl: duration(1000, 86_400_000, '1s to 24h').default(3_600_000),
    /** The tokens' `iss` claim. */
    issuer: z.string('must be a string').min(1, 'must not be empty').max(256, 'must be at most 256 characters').default('portico'),
  })
  .superRefine((t, ctx) => {
    if (t.algorithm === 'HS256') {
      if (Buffer.byteLength(t.signingKey) < 32) {
        ctx.addIssue({ code: 'custom', path: ['signingKey'], message: 'must be at least 32 bytes (256 bits) for HS256' });
      }
      return;
    }
    const problem = privateKeyProblem(t.signingKey, t.algorithm);
    if (problem) ctx.addIssue({ code: 'custom', path: ['signingKey'], message: problem });
  });

export type ConsumerConfig = z.output<typeof consumerSchema>;
export type TokenEndpointConfig = z.output<typeof tokenEndpointSchema>;
