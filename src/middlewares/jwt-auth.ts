import { createPublicKey, createSecretKey, webcrypto, type KeyObject } from 'node:crypto';
import { JwksCache } from '../runtime/jwks-cache.js';
import { decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import { publicKeyAlgorithm, type JwtAuthOptions } from '../config/schemas/middlewares.js';
import { GatewayError } from '../errors.js';
import { admit, authorizationCredentials, headerValues, withoutHeader } from '../consumers/admit.js';
import type { Consumer, ConsumerRegistry } from '../consumers/consumer.js';
import { normalizePem, TOKEN_ALGORITHMS, type TokenAlgorithm } from '../config/schemas/consumers.js';
import type { RequestContext, Middleware } from '../snapshot/snapshot.js';
import type { MiddlewareCompileContext } from '../snapshot/snapshot.js';

/** Longest token looked at; anything longer is refused before parsing. */
export const MAX_TOKEN_LENGTH = 8192;
/** Verified tokens kept per jwt-auth instance (see `verified`). */
const VERIFIED_CACHE_SIZE = 10_000;
/** JWS compact serialization: three base64url parts. */
const JWS_COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const REALM = 'Bearer realm="portico"';

/**
 * HS256 keys as WebCrypto keys, imported once: given a secret KeyObject,
 * jose would re-import it on every verification (measured 2.4× slower).
 */
const hmacKeys = new WeakMap<KeyObject, Promise<webcrypto.CryptoKey>>();
function verificationKey(key: KeyObject | JWTVerifyGetKey): KeyObject | JWTVerifyGetKey | Promise<webcrypto.CryptoKey> {
  if (typeof key === 'function' || key.type !== 'secret') return key;
  let k = hmacKeys.get(key);
  if (k === undefined) {
    k = webcrypto.subtle.importKey('raw', key.export(), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    hmacKeys.set(key, k);
  }
  return k;
}

/** True when the options name no key of their own (then tokens of the config's token endpoints are accepted). */
export function usesTokenEndpoints(o: JwtAuthOptions): boolean {
  return o.signingKey === undefined && o.publicKey === undefined && o.jwksUrl === undefined;
}

function unauthorized(description: string): GatewayError {
  return new GatewayError('UNAUTHORIZED', `invalid token: ${description}`, {
    headers: { 'www-authenticate': `${REALM}, error="invalid_token", error_description="${description}"` },
  });
}

/** A verification that failed on the signature (try the next candidate key) or on anything else (stop). */
function isSignatureFailure(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' || code === 'ERR_JWKS_NO_MATCHING_KEY';
}

/** A fixed description for a jose error (never the library's text, which may echo token content). */
function describe(err: unknown): string {
  const e = err as { code?: string; claim?: string; reason?: string };
  switch (e.code) {
    case 'ERR_JWT_EXPIRED':
      return 'the token has expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (e.claim === 'nbf') return 'the token is not valid yet';
      if (e.claim === 'iat') return 'the token was issued in the future';
      if (e.reason === 'missing') return `the token has no ${e.claim === 'exp' ? 'exp' : 'required'} claim`;
      if (e.claim === 'aud') return 'the token is not for this audience';
      if (e.claim === 'iss') return 'the token issuer is not accepted';
      return 'a token claim is invalid';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return 'the token algorithm is not accepted';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'the token signature is invalid';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'no key matches the token';
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
      return 'the signing keys are unavailable';
    default:
      return 'the token is malformed or invalid';
  }
}

interface Candidate {
  key: KeyObject | JWTVerifyGetKey;
  /** Who the token names when this key verified it. */
  consumer: (claims: JWTPayload) => Consumer | undefined;
  issuer?: string | string[];
}

/**
 * `jwt-auth`: a bearer JWT (RFC 6750, RFC 7519) that names a consumer.
 *
 * Keys: with `signingKey` / `publicKey` / `jwksUrl`, tokens are verified with
 * those, and the consumer is the one listing the token's `iss` in
 * `jwtIssuers`, else the one whose id is `sub`. Without them (`jwt-auth:
 * {}`), tokens issued by any token endpoint of this config are accepted:
 * `iss` must be that endpoint's issuer, and `sub` is the consumer id. With
 * `consumerSecrets: true`, an HS256 token signed with a consumer's own
 * secret whose `iss` (or `sub`) is that consumer's id is accepted too.
 *
 * `exp` is required; `exp`/`nbf` are checked with `leeway`. A missing token
 * is 401 with `WWW-Authenticate: Bearer realm="portico"`; a bad one is 401
 * with `error="invalid_token"`; then the consumer's routes / ipAllow (403).
 */
export function jwtAuth(options: JwtAuthOptions, compile: MiddlewareCompileContext): Middleware {
  const registry: ConsumerRegistry = compile.consumers;
  const logger = compile.logger;
  const headerLower = options.header;
  const bearer = headerLower === 'authorization';
  const verifyOptions: JWTVerifyOptions = {
    clockTolerance: options.leeway / 1000,
    requiredClaims: ['exp'],
    ...(options.audience === undefined ? {} : { audience: options.audience }),
    ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
  };

  // Explicit keys, built once.
  const explicit = !usesTokenEndpoints(options);
  const hsKey = options.signingKey === undefined ? undefined : createSecretKey(Buffer.from(options.signingKey, 'utf8'));
  const pubKey = options.publicKey === undefined ? undefined : createPublicKey(normalizePem(options.publicKey));
  const pubAlg = pubKey === undefined ? undefined : publicKeyAlgorithm(pubKey);
  const jwks =
    options.jwksUrl === undefined
      ? undefined
      : (compile.jwks ?? new JwksCache()).get(options.jwksUrl, options.jwksTimeout);
  const byIssuerOrSub = (claims: JWTPayload) =>
    (typeof claims.iss === 'string' ? registry.byIssuer(claims.iss) : undefined) ?? (typeof claims.sub === 'string' ? registry.get(claims.sub) : undefined);

  const explicitAlgs = new Set<TokenAlgorithm>();
  if (hsKey) explicitAlgs.add('HS256');
  if (pubAlg) explicitAlgs.add(pubAlg);
  if (jwks) {
    explicitAlgs.add('RS256');
    explicitAlgs.add('ES256');
  }
  // Consumer secrets as HS256 keys, built once.
  const consumerKeys = new Map<string, { consumer: Consumer; key: KeyObject }>();
  if (options.consumerSecrets) {
    for (const c of registry.all()) {
      if (c.config.secret !== undefined) consumerKeys.set(c.id, { consumer: c, key: createSecretKey(Buffer.from(c.config.secret, 'utf8')) });
    }
  }
  const defaults: readonly string[] = explicit ? [...explicitAlgs, ...(options.consumerSecrets ? ['HS256'] : [])] : TOKEN_ALGORITHMS;
  const allowed = new Set<string>(options.algorithms ?? defaults);

  function candidates(alg: string, kid: string | undefined, claims: JWTPayload): Candidate[] {
    const out: Candidate[] = [];
    if (options.consumerSecrets && alg === 'HS256') {
      for (const id of [claims.iss, claims.sub]) {
        const entry = typeof id === 'string' ? consumerKeys.get(id) : undefined;
        if (entry && !out.some((c) => c.key === entry.key)) out.push({ key: entry.key, consumer: () => entry.consumer });
      }
    }
    if (explicit) {
      if (!explicitAlgs.has(alg as TokenAlgorithm)) return out;
      if (alg === 'HS256' && hsKey) out.push({ key: hsKey, consumer: byIssuerOrSub });
      else if (alg === pubAlg && pubKey && (kid === undefined || jwks === undefined)) out.push({ key: pubKey, consumer: byIssuerOrSub });
      else if (jwks && alg !== 'HS256') out.push({ key: jwks, consumer: byIssuerOrSub });
      // A token with a kid unknown to the JWKS may still be for the static public key.
      if (jwks && pubKey && alg === pubAlg && kid !== undefined) out.push({ key: pubKey, consumer: byIssuerOrSub });
      return out;
    }
    for (const e of registry.tokenEndpoints()) {
      if (e.algorithm !== alg || e.issuer !== claims.iss) continue;
      if (kid !== undefined && e.kid !== undefined && kid !== e.kid) continue;
      out.push({ key: e.key, consumer: (claims) => (typeof claims.sub === 'string' ? registry.get(claims.sub) : undefined), issuer: e.issuer });
    }
    return out;
  }

  /**
   * Tokens whose signature was verified, until they expire (like Envoy's
   * jwt_authn cache): a client sending the same token again costs a map
   * lookup and a clock check, not a signature verification and a promise.
   * Bounded; the oldest entries go first. Only a token that verified can be
   * found here, so a forged one always takes the full path.
   */
  const verified = new Map<string, { consumer: Consumer; exp: number; nbf: number }>();
  const leewayMs = options.leeway;

  function remember(token: string, consumer: Consumer, payload: JWTPayload): void {
    if (typeof payload.exp !== 'number') return;
    if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value!);
    verified.set(token, { consumer, exp: payload.exp * 1000, nbf: typeof payload.nbf === 'number' ? payload.nbf * 1000 : 0 });
  }

  /** True when the token was verified before and is still within exp/nbf (with leeway); the consumer is admitted. */
  function fromCache(ctx: RequestContext, token: string): boolean {
    const hit = verified.get(token);
    if (hit === undefined) return false;
    const now = Date.now();
    if (now > hit.exp + leewayMs || now + leewayMs < hit.nbf) {
      verified.delete(token);
      return false;
    }
    admit(ctx, hit.consumer);
    if (options.hideCredentials) ctx.upstreamHeaders = withoutHeader(ctx.upstreamHeaders, headerLower);
    return true;
  }

  async function authenticate(ctx: RequestContext, token: string): Promise<void> {
    let alg: string | undefined;
    let kid: string | undefined;
    let claims: JWTPayload;
    try {
      const header = decodeProtectedHeader(token);
      alg = header.alg;
      kid = typeof header.kid === 'string' ? header.kid : undefined;
      claims = decodeJwt(token);
    } catch {
      throw unauthorized('the token is malformed');
    }
    if (alg === undefined || !allowed.has(alg)) throw unauthorized('the token algorithm is not accepted');
    const list = candidates(alg, kid, claims);
    if (list.length === 0) throw unauthorized('no trusted key or issuer matches the token');
    let lastError: unknown;
    for (const c of list) {
      let payload: JWTPayload;
      try {
        const opts: JWTVerifyOptions = { ...verifyOptions, algorithms: [alg] };
        if (c.issuer !== undefined && opts.issuer === undefined) opts.issuer = c.issuer;
        payload = (await jwtVerify(token, (await verificationKey(c.key)) as never, opts)).payload;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (typeof c.key === 'function' && (code === undefined || code === 'ERR_JOSE_GENERIC' || code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JWKS_INVALID')) {
          // The key set could not be fetched (refused, timed out, not 200, not a JWKS): not the client's fault, but its token cannot be checked.
          logger.warn({ err: String(err), route: ctx.route?.name, jwksUrl: options.jwksUrl }, 'jwt-auth: cannot load the JWKS');
          throw unauthorized('the signing keys are unavailable');
        }
        lastError = err;
        if (isSignatureFailure(err)) continue;
        throw unauthorized(describe(err));
      }
      const consumer = c.consumer(payload);
      if (consumer === undefined) throw unauthorized('the token does not name a known consumer');
      admit(ctx, consumer);
      remember(token, consumer, payload);
      if (options.hideCredentials) ctx.upstreamHeaders = withoutHeader(ctx.upstreamHeaders, headerLower);
      return;
    }
    throw unauthorized(describe(lastError));
  }

  return {
    name: 'jwt-auth',
    onRequest(ctx) {
      const values = headerValues(ctx.req.rawHeaders, headerLower);
      if (values.length === 0) {
        throw new GatewayError('UNAUTHORIZED', 'a bearer token is required', { headers: { 'www-authenticate': REALM } });
      }
      if (values.length > 1) {
        throw new GatewayError('BAD_REQUEST', `more than one ${headerLower} header`, {
          headers: { 'www-authenticate': `${REALM}, error="invalid_request", error_description="more than one token header"` },
        });
      }
      let token: string | undefined = values[0]!.trim();
      if (bearer) {
        token = authorizationCredentials(token, 'Bearer');
        if (token === undefined) {
          // Another scheme (or none): no token was presented (RFC 6750 §3.1: no error code).
          if (!/^bearer\s*$/i.test(values[0]!.trim())) {
            throw new GatewayError('UNAUTHORIZED', 'a bearer token is required', { headers: { 'www-authenticate': REALM } });
          }
          throw unauthorized('the token is empty');
        }
      } else if (/^bearer /i.test(token)) {
        token = token.slice(7).trim();
      }
      if (token.length > MAX_TOKEN_LENGTH) throw unauthorized('the token is too long');
      if (!JWS_COMPACT.test(token)) throw unauthorized('the token is malformed');
      if (fromCache(ctx, token)) return;
      return authenticate(ctx, token);
    },
  };
}
