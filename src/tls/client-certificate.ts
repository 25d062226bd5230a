import type { PeerCertificate } from 'node:tls';
import { parseSubjectAltName } from './certificates.js';

/**
 * The certificate a client presented on a TLS connection (mutual TLS,
 * RFC 8446 §4.4.2), as the mtls-auth middleware and consumer lookup see
 * it. It belongs to the connection, so it is read once per socket and
 * cached (every request of a keep-alive connection or HTTP/2 session
 * shares it).
 */
export interface ClientCertificate {
  /** The subject's common name ('' when it has none). */
  subject: string;
  /** The CN and every subjectAltName value (DNS, URI, email, IP), deduplicated, CN first. */
  names: string[];
  /** It chains to the listener's clientCa and is within its validity period. */
  authorized: boolean;
  /** Why it did not verify, as OpenSSL's code (CERT_HAS_EXPIRED, UNABLE_TO_GET_ISSUER_CERT_LOCALLY, …); undefined when authorized. */
  error: string | undefined;
  /** SHA-256 fingerprint, colon-separated upper-case hex (as node:tls prints it). */
  fingerprint256: string;
}

/** What is read from the socket: a TLSSocket, or node:http2's socket proxy that forwards these members. */
interface TlsPeer {
  encrypted?: unknown;
  authorized?: unknown;
  authorizationError?: unknown;
  getPeerCertificate?: (detailed?: boolean) => PeerCertificate | Record<string, never> | null;
}

const SAN_TYPES = new Set(['DNS', 'URI', 'email', 'IP Address']);

const cache = new WeakMap<object, ClientCertificate | null>();

/** The subject CN of a peer certificate (the last one when several, the most specific; RFC 6125 §2.3). */
function cnOf(cert: PeerCertificate): string {
  const cn = (cert.subject as unknown as Record<string, string | string[] | undefined> | undefined)?.CN;
  if (Array.isArray(cn)) return cn[cn.length - 1] ?? '';
  return cn ?? '';
}

/** Builds the view of a peer certificate and the socket's verification result. */
export function describeClientCertificate(cert: PeerCertificate, authorized: boolean, error: unknown): ClientCertificate {
  const subject = cnOf(cert);
  const names: string[] = [];
  const seen = new Set<string>();
  const add = (n: string) => {
    if (n !== '' && !seen.has(n)) {
      seen.add(n);
      names.push(n);
    }
  };
  add(subject);
  for (const e of parseSubjectAltName(cert.subjectaltname)) if (SAN_TYPES.has(e.type)) add(e.value);
  return {
    subject,
    names,
    authorized,
    error: authorized ? undefined : error === undefined || error === null ? 'UNKNOWN' : String((error as { code?: unknown }).code ?? error),
    fingerprint256: cert.fingerprint256,
  };
}

/**
 * The client certificate of `socket` (a TLSSocket, or the socket proxy of
 * an HTTP/2 session: pass `stream.session.socket`, which is one object per
 * connection, so the cache works); undefined when the connection is not
 * TLS or the client presented no certificate.
 */
export function clientCertificate(socket: unknown): ClientCertificate | undefined {
  if (typeof socket !== 'object' || socket === null) return undefined;
  const hit = cache.get(socket);
  if (hit !== undefined) return hit ?? undefined;
  let found: ClientCertificate | null = null;
  try {
    const peer = socket as TlsPeer;
    if (peer.encrypted === true && typeof peer.getPeerCertificate === 'function') {
      const cert = peer.getPeerCertificate(false);
      // No certificate: node:tls returns {} (or null before the handshake).
      if (cert !== null && typeof cert === 'object' && 'raw' in cert && cert.raw !== undefined) {
        found = describeClientCertificate(cert as PeerCertificate, peer.authorized === true, peer.authorizationError);
      }
    }
  } catch {
    // node:http2's proxy throws once its session lost the socket: nothing to read.
    return undefined;
  }
  cache.set(socket, found);
  return found ?? undefined;
}
