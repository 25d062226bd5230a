import { isIP } from 'node:net';
import { z } from 'zod';
import { bool } from '../values.js';

/**
 * Schemas of the TLS blocks: a listener's `tls:` (certificates picked by
 * SNI, client certificates) and an upstream's `tls:` (how Portico connects
 * to its targets). File paths are read when the config is compiled, so a
 * reload picks up renewed certificates; a relative path is relative to the
 * working directory, like access-log paths.
 */

const file = z.string('must be a file path').min(1, 'must be a file path');

/** A certificate or key: a PEM file's path, or the PEM text itself (starting with "-----BEGIN "). */
const pemSource = z.string('must be a file path or PEM text').min(1, 'must be a file path or PEM text');

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const certificateName = z.string().regex(NAME, 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit');

/**
 * A top-level `certificates:` entry: a named certificate and key that
 * listeners' `tls.certificates` use by name (`{ certificate: NAME }`), so
 * one renewal (a PUT on the admin API, or a file edit) reaches every
 * listener that serves it.
 */
export const certificateResourceSchema = z.strictObject({
  name: certificateName,
  /** PEM certificate chain (leaf first): a file path or the PEM text. */
  cert: pemSource,
  /** PEM private key of the leaf certificate: a file path or the PEM text. */
  key: pemSource,
});

const certificateFiles = z.strictObject({
  /** PEM certificate chain (leaf first). Its subjectAltName DNS names (or CN) are the SNI names it serves. */
  cert: pemSource,
  /** PEM private key of the leaf certificate. */
  key: pemSource,
  /** Served when no certificate's name matches the SNI, or the client sent none. At most one. */
  default: bool.default(false),
});

/**
 * One certificate of a listener: its files (or PEM text), or `{ certificate:
 * NAME }`, a top-level `certificates:` entry. Both parse to `{ cert, key,
 * default }`; a named one also keeps `certificate` and gets its cert and key
 * when the document is validated (config/certificates.ts).
 */
const certificate = z.union(
  [
    certificateFiles,
    z.strictObject({ certificate: certificateName, default: bool.default(false) }).transform((c) => ({ certificate: c.certificate, cert: '', key: '', default: c.default })),
  ],
  { error: (iss) => (iss.code === 'invalid_union' ? 'must be { cert, key } (file paths or PEM) or { certificate: NAME }' : undefined) },
);

export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;

/** A listener's `tls:` (protocol https). */
export const listenerTlsSchema = z
  .strictObject({
    certificates: z.array(certificate).min(1, 'needs at least one certificate'),
    /** PEM CA bundle that client certificates must chain to. */
    clientCa: file.optional(),
    /** `require`: refuse the handshake without a valid client certificate; `optional`: ask, let mtls-auth decide; `none`: do not ask. */
    clientAuth: z.enum(['none', 'optional', 'require'], 'must be none, optional or require').default('none'),
    minVersion: z.enum(TLS_VERSIONS, 'must be TLSv1.2 or TLSv1.3').default('TLSv1.2'),
    /** OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults); absent = Node's defaults. */
    ciphers: z.string('must be an OpenSSL cipher list').min(1, 'must be an OpenSSL cipher list').optional(),
  })
  .superRefine((t, ctx) => {
    if (t.certificates.filter((c) => c.default).length > 1) {
      ctx.addIssue({ code: 'custom', path: ['certificates'], message: 'at most one certificate may be default: true' });
    }
    if (t.clientAuth !== 'none' && t.clientCa === undefined) {
      ctx.addIssue({ code: 'custom', path: ['clientCa'], message: `is required with clientAuth: ${t.clientAuth}` });
    }
    if (t.clientAuth === 'none' && t.clientCa !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['clientAuth'], message: 'must be optional or require when clientCa is set' });
    }
  });

/** An upstream's `tls:`: Portico is the TLS client of its targets. */
export const upstreamTlsSchema = z
  .strictObject({
    /** PEM CA bundle that targets' certificates must chain to; absent = the system's CAs. */
    ca: file.optional(),
    /** SNI and the name checked against the target's certificate; absent = the target's host. */
    serverName: z
      .string('must be a host name')
      .min(1, 'must be a host name')
      .max(253, 'must be at most 253 characters')
      .refine((v) => isIP(v) === 0, 'must be a host name: SNI cannot carry an IP address (RFC 6066 §3); leave it out to check the target IP against the certificate')
      .optional(),
    /** Do not verify the target's certificate. Logged as a warning at every load; never use it in production. */
    insecureSkipVerify: bool.default(false),
    /** A client certificate (and its key) for targets that require mutual TLS. */
    cert: file.optional(),
    key: file.optional(),
    minVersion: z.enum(TLS_VERSIONS, 'must be TLSv1.2 or TLSv1.3').default('TLSv1.2'),
  })
  .superRefine((t, ctx) => {
    if ((t.cert === undefined) !== (t.key === undefined)) {
      ctx.addIssue({ code: 'custom', path: [t.cert === undefined ? 'cert' : 'key'], message: 'cert and key go together' });
    }
  });

export type ListenerTlsConfig = z.output<typeof listenerTlsSchema>;
export type UpstreamTlsConfig = z.output<typeof upstreamTlsSchema>;
