import { createHash, createPrivateKey, createPublicKey, createSecretKey, randomUUID, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { SignJWT } from 'jose';
import type { RequestContext } from '../snapshot/snapshot.js';
import { GatewayError } from '../errors.js';
import { authorizationCredentials, decodeBasic, headerValues } from './admit.js';
import type { ConsumerRegistry } from './consumer.js';
import { normalizePem, type TokenEndpointConfig } from '../config/schemas/consumers.js';

/** Largest accepted request body; a token request is a few dozen bytes. */
export const TOKEN_BODY_LIMIT = 8 * 1024;
/** How long the body may take to arrive. */
const BODY_TIMEOUT_MS = 10_000;
const FORM = /^application\/x-www-form-urlencoded\s*(;.*)?$/i;
const REALM = 'Basic realm="portico", charset="UTF-8"';

/** The signing key (private/secret) and the verification key (public/secret) of one endpoint, built once. */
export function endpointKeys(config: TokenEndpointConfig): { sign: KeyObject; verify: KeyObject; kid: string | undefined } {
  if (config.algorithm === 'HS256') {
    const secret = createSecretKey(Buffer.from(config.signingKey, 'utf8'));
    return { sign: secret, verify: secret, kid: undefined };
  }
  const sign = createPrivateKey(normalizePem(config.signingKey));
  const verify = createPublicKey(sign);
  return { sign, verify, kid: jwkThumbprint(verify) };
}

/** RFC 7638 thumbprint of a public key: SHA-256 over its required JWK members in lexical order, base64url. */
function jwkThumbprint(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' }) as Record<string, string>;
  const members = jwk.kty === 'RSA' ? { e: jwk.e, kty: jwk.kty, n: jwk.n } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(description);
  }
}

/**
 * The OAuth 2.0 client-credentials token endpoint (RFC 6749 §4.4).
 *
 * `POST` with the consumer's credentials (`Authorization: Basic
 * base64(id:secret)`, or `client_id`/`client_secret` in the body) and an
 * `application/x-www-form-urlencoded` body `grant_type=client_credentials`
 * (at most 8 KiB, else 413). Answers 200 `{ access_token, token_type:
 * "Bearer", expires_in }` with `Cache-Control: no-store`; errors are RFC 6749
 * §5.2 JSON: `invalid_client` 401 (with `WWW-Authenticate: Basic`),
 * `invalid_request`/`unsupported_grant_type`/`unauthorized_client` 400.
 *
 * The token is a JWT signed with `signingKey`: `iss` = issuer, `sub` and
 * `client_id` = the consumer id, `iat`, `exp` = now + ttl, `jti`. Its
 * verification key is registered with the snapshot's consumers, which is
 * how `jwt-auth: {}` verifies it.
 */
export function createTokenEndpoint(config: TokenEndpointConfig, consumers: ConsumerRegistry): (ctx: RequestContext) => void | Promise<void> {
  const keys = endpointKeys(config);
  consumers.registerTokenEndpoint({ issuer: config.issuer, algorithm: config.algorithm, key: keys.verify, kid: keys.kid });
  const header = keys.kid === undefined ? { alg: config.algorithm, typ: 'JWT' } : { alg: config.algorithm, typ: 'JWT', kid: keys.kid };
  const ttlSeconds = Math.max(1, Math.round(config.ttl / 1000));

  async function issue(ctx: RequestContext): Promise<void> {
    // A body already read whole (the lean HTTP/1.1 engine's) is in ctx.out.body; its size was checked against the limit.
    const body = Buffer.isBuffer(ctx.out.body) ? ctx.out.body.toString('utf8') : await readBody(ctx.req, TOKEN_BODY_LIMIT);
    try {
      const contentType = ctx.req.headers['content-type'] ?? '';
      if (!FORM.test(contentType)) throw new OAuthError(400, 'invalid_request', 'the body must be application/x-www-form-urlencoded');
      const params = parseForm(body);
      const consumerCreds = clientCredentials(ctx.req, params);
      const consumer = consumers.authenticate(consumerCreds.id, consumerCreds.secret)
        ?? (consumerCreds.altId !== undefined ? consumers.authenticate(consumerCreds.altId, consumerCreds.altSecret!) : undefined);
      if (consumer === undefined) throw new OAuthError(401, 'invalid_client', 'client authentication failed', { 'www-authenticate': REALM });
      const grant = params.get('grant_type');
      if (grant === undefined) throw new OAuthError(400, 'invalid_request', 'grant_type is required');
      if (grant !== 'client_credentials') throw new OAuthError(400, 'unsupported_grant_type', 'only grant_type=client_credentials is supported');
      if (consumer.ipAllow !== null && !consumer.ipAllow.has(ctx.clientIp)) {
        throw new OAuthError(400, 'unauthorized_client', 'this client may not request tokens from this address');
      }
      ctx.consumer = consumer;
      const now = Math.floor(Date.now() / 1000);
      const token = await new SignJWT({ client_id: consumer.id })
        .setProtectedHeader(header)
        .setIssuer(config.issuer)
        .setSubject(consumer.id)
        .setIssuedAt(now)
        .setExpirationTime(now + ttlSeconds)
        .setJti(randomUUID())
        .sign(keys.sign);
      writeJson(ctx, 200, { access_token: token, token_type: 'Bearer', expires_in: ttlSeconds });
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      writeJson(ctx, err.status, { error: err.error, error_description: err.description }, err.headers);
    }
  }

  return (ctx) => {
    if (ctx.req.method !== 'POST') {
      writeJson(ctx, 405, { error: 'invalid_request', error_description: 'the token endpoint accepts POST only' }, { allow: 'POST' });
      return;
    }
    if (ctx.contentLength > TOKEN_BODY_LIMIT) {
      throw new GatewayError('PAYLOAD_TOO_LARGE', `the token request body is limited to ${TOKEN_BODY_LIMIT} bytes`, { headers: { connection: 'close' } });
    }
    return issue(ctx);
  };
}

/** The body as text, at most `limit` bytes; 413 above it, 408 if it does not arrive in time, 499 if the client leaves. */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  if (req.complete && req.readableEnded) return Promise.resolve('');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err: GatewayError | undefined) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.off('error', onClose);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size).toString('utf8'));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done(new GatewayError('PAYLOAD_TOO_LARGE', `the token request body is limited to ${limit} bytes`, { headers: { connection: 'close' } }));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => done(undefined);
    const onClose = () => done(new GatewayError('DOWNSTREAM_ABORTED'));
    const timer = setTimeout(() => done(new GatewayError('REQUEST_TIMEOUT', 'the token request body did not arrive in time', { headers: { connection: 'close' } })), BODY_TIMEOUT_MS);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
    req.on('error', onClose);
  });
}

/** Parses the form; a parameter sent twice is an error (RFC 6749 §3.2). */
function parseForm(body: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const [k, v] of new URLSearchParams(body)) {
    if (params.has(k)) throw new OAuthError(400, 'invalid_request', `parameter ${k.length <= 40 ? k : 'name'} is repeated`);
    params.set(k, v);
  }
  return params;
}

interface ClientCreds {
  id: string;
  secret: string;
  /** The form-urldecoded reading of Basic credentials (RFC 6749 §2.3.1), when it differs. */
  altId?: string;
  altSecret?: string;
}

/** The client's id and secret from `Authorization: Basic` (preferred) or the body; exactly one method. */
function clientCredentials(req: IncomingMessage, params: Map<string, string>): ClientCreds {
  const auth = headerValues(req.rawHeaders, 'authorization');
  const inBody = params.has('client_id') || params.has('client_secret');
  const invalid = (why: string) => new OAuthError(401, 'invalid_client', why, { 'www-authenticate': REALM });
  if (auth.length > 1) throw new OAuthError(400, 'invalid_request', 'more than one Authorization header');
  if (auth.length === 1) {
    if (inBody) throw new OAuthError(400, 'invalid_request', 'use one client authentication method, not two');
    const creds = authorizationCredentials(auth[0]!, 'Basic');
    const basic = creds === undefined ? undefined : decodeBasic(creds);
    if (basic === undefined) throw invalid('malformed Basic credentials');
    const id = formDecode(basic.id);
    const secret = formDecode(basic.secret);
    if (id !== undefined && secret !== undefined && (id !== basic.id || secret !== basic.secret)) {
      return { id: basic.id, secret: basic.secret, altId: id, altSecret: secret };
    }
    return basic;
  }
  if (inBody) {
    const id = params.get('client_id');
    const secret = params.get('client_secret');
    if (id === undefined || secret === undefined) throw invalid('client_id and client_secret go together');
    return { id, secret };
  }
  throw invalid('client authentication is required');
}

/** application/x-www-form-urlencoded decoding of one value, or undefined when malformed. */
function formDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

function writeJson(ctx: RequestContext, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const res = ctx.res;
  if (ctx.closed || res.headersSent) {
    ctx.status = 499;
    return;
  }
  const buf = Buffer.from(JSON.stringify(body));
  ctx.status = status;
  ctx.bytesSent = buf.length;
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json;charset=UTF-8',
    'content-length': buf.length,
    'cache-control': 'no-store',
    pragma: 'no-cache',
    'x-request-id': ctx.requestId,
  });
  res.end(buf);
}
