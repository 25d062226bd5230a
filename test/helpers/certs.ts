import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A throwaway PKI for TLS tests, made with the `openssl` CLI (OpenSSL 3.0+)
 * in a temporary directory: a trusted CA, a second CA nobody trusts, and
 * leaves issued on demand. EC P-256 keys keep each issue() around 15 ms.
 * Leaves carry the extensions Node's TLS stack checks (RFC 5280 §4.2):
 * basicConstraints CA:FALSE, keyUsage digitalSignature, extendedKeyUsage
 * serverAuth or clientAuth, subjectKeyIdentifier/authorityKeyIdentifier and
 * a subjectAltName (RFC 6125: clients match SANs, not the CN).
 */

const run = promisify(execFile);

export interface Issued {
  /** File path of the PEM certificate. */
  cert: string;
  /** File path of the PEM private key (unencrypted PKCS#8). */
  key: string;
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  /** SAN entries: a bare DNS name, or a typed one ('IP:127.0.0.1', 'URI:spiffe://x', 'email:a@b'). Default: DNS:commonName. */
  sans?: string[];
  /** A client certificate (EKU clientAuth) instead of a server one (serverAuth). */
  client?: boolean;
  /** Valid from 2020-01-01 to 2020-01-02: verification fails with CERT_HAS_EXPIRED. */
  expired?: boolean;
  /** Signed by a second CA that is not `caCert`: verification fails (unable to get issuer). */
  otherCa?: boolean;
}

export interface Pki {
  dir: string;
  /** File path of the trusted CA certificate. */
  caCert: string;
  caPem: string;
  issue(commonName: string, opts?: IssueOptions): Promise<Issued>;
  cleanup(): Promise<void>;
}

const REQ_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
`;

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 10_000 });
  } catch (err) {
    const e = err as { code?: unknown; stderr?: string };
    if (e.code === 'ENOENT') throw new Error('the openssl CLI is required by the TLS tests (apt-get install openssl)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr ?? String(err)}`);
  }
}

/** A SAN list for an OpenSSL config: bare names become DNS:name. */
function sanList(sans: string[]): string {
  return sans.map((s) => (/^(DNS|IP|URI|email|RID|dirName|otherName):/i.test(s) ? s : `DNS:${s}`)).join(',');
}

function leafExtensions(client: boolean, sans: string[]): string {
  return `basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = ${client ? 'clientAuth' : 'serverAuth'}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = ${sanList(sans)}
`;
}

/** `/CN=...` with the characters openssl -subj treats specially escaped. */
function subject(commonName: string): string {
  return `/CN=${commonName.replace(/[\\/,+=]/g, (c) => `\\${c}`)}`;
}

export async function createPki(): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'portico-pki-'));
  const reqConfig = join(dir, 'req.cnf');
  await writeFile(reqConfig, REQ_CONFIG);

  async function makeCa(name: string, commonName: string): Promise<{ cert: string; key: string }> {
    const cert = join(dir, `${name}.crt`);
    const key = join(dir, `${name}.key`);
    await openssl(['req', '-config', reqConfig, '-x509', ...EC, '-keyout', key, '-out', cert, '-subj', subject(commonName), '-days', '3650', '-extensions', 'ca_ext']);
    return { cert, key };
  }

  const ca = await makeCa('ca', 'Portico Test CA');
  let otherCa: Promise<{ cert: string; key: string }> | undefined;
  let counter = 0;

  async function issue(commonName: string, opts: IssueOptions = {}): Promise<Issued> {
    const signer = opts.otherCa ? await (otherCa ??= makeCa('other-ca', 'Portico Untrusted CA')) : ca;
    const base = join(dir, `${++counter}-${commonName.replace(/[^A-Za-z0-9.-]/g, '_')}`);
    const cert = `${base}.crt`;
    const key = `${base}.key`;
    const extFile = `${base}.ext.cnf`;
    await writeFile(extFile, `${REQ_CONFIG}[leaf_ext]\n${leafExtensions(opts.client === true, opts.sans ?? [commonName])}`);

    if (!opts.expired) {
      // OpenSSL 3.0's `req -x509 -CA` makes the key and signs the leaf in one call.
      await openssl(['req', '-config', extFile, '-x509', '-CA', signer.cert, '-CAkey', signer.key, ...EC, '-keyout', key, '-out', cert, '-subj', subject(commonName), '-days', '30', '-extensions', 'leaf_ext']);
    } else {
      // Only `openssl ca` sets an arbitrary validity window in OpenSSL 3.0 (x509 -not_before came in 3.4),
      // and it needs a database: a fresh one per call, so concurrent issues never race on index.txt.
      const db = `${base}.db`;
      await mkdir(db);
      await writeFile(join(db, 'index.txt'), '');
      const caConfig = join(db, 'ca.cnf');
      await writeFile(
        caConfig,
        `[ca]\ndefault_ca = ca_default\n[ca_default]\ndatabase = ${join(db, 'index.txt')}\nserial = ${join(db, 'serial')}\nnew_certs_dir = ${db}\n` +
          `default_md = sha256\npolicy = policy_any\nunique_subject = no\n[policy_any]\ncommonName = supplied\n` +
          `[leaf_ext]\n${leafExtensions(opts.client === true, opts.sans ?? [commonName])}`,
      );
      const csr = `${base}.csr`;
      await openssl(['req', '-config', reqConfig, '-new', ...EC, '-keyout', key, '-out', csr, '-subj', subject(commonName)]);
      await openssl([
        'ca', '-batch', '-config', caConfig, '-cert', signer.cert, '-keyfile', signer.key, '-in', csr, '-out', cert,
        '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extensions', 'leaf_ext', '-notext', '-rand_serial',
      ]);
    }
    const [certPem, keyPem] = await Promise.all([readFile(cert, 'utf8'), readFile(key, 'utf8')]);
    return { cert, key, certPem, keyPem };
  }

  return {
    dir,
    caCert: ca.cert,
    caPem: await readFile(ca.cert, 'utf8'),
    issue,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
