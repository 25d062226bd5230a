/**
 * The self-signed certificate of the `h2` scenario (CN and DNS name
 * `localhost`, ECDSA P-256, valid for a day), written into a bench temp dir.
 * Made with the `openssl` CLI when installed; otherwise built here (the
 * DER of an X.509 v3 certificate, signed with node:crypto), so the bench
 * runs on a machine with nothing but Node.
 */
import { spawnSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { hasBinary } from './util.js';

export interface CertFiles {
  cert: string;
  key: string;
  /** 'openssl' or 'node:crypto'. */
  madeWith: string;
}

export async function makeCert(dir: string): Promise<CertFiles> {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  if (hasBinary('openssl')) {
    const r = spawnSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-days', '1',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' },
    );
    if (r.status === 0) {
      // Sanity: the key must load (an OpenSSL that wrote something else would fail later, less clearly).
      createPrivateKey(await readFile(key));
      return { cert, key, madeWith: 'openssl' };
    }
    process.stderr.write(`bench: openssl req failed (${(r.stderr || '').trim().split('\n')[0] ?? ''}); making the certificate with node:crypto\n`);
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await writeFile(key, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(cert, selfSigned(privateKey, publicKey, 'localhost'));
  return { cert, key, madeWith: 'node:crypto' };
}

// --- minimal DER (ITU-T X.690) for one certificate shape ---

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, content]);
}
const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const b7: number[] = [p & 0x7f];
    for (let v = p >>> 7; v > 0; v >>>= 7) b7.unshift((v & 0x7f) | 0x80);
    bytes.push(...b7);
  }
  return tlv(0x06, Buffer.from(bytes));
}

function positiveInteger(bytes: Buffer): Buffer {
  const b = (bytes[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
  return tlv(0x02, b);
}

/** UTCTime YYMMDDHHMMSSZ (valid until 2049). */
function utcTime(d: Date): Buffer {
  const p = (n: number): string => String(n).padStart(2, '0');
  const s = `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return tlv(0x17, Buffer.from(s, 'ascii'));
}

const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

/** A self-signed X.509 v3 certificate (PEM) for `name`: CN=name, subjectAltName DNS:name. */
export function selfSigned(privateKey: KeyObject, publicKey: KeyObject, name: string): string {
  const subject = seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(name, 'utf8')))));
  const now = Date.now();
  const san = seq(oid('2.5.29.17'), tlv(0x04, seq(tlv(0x82, Buffer.from(name, 'ascii')))));
  const tbs = seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))), // version v3
    positiveInteger(randomBytes(8)),
    ECDSA_SHA256,
    subject, // issuer = subject
    seq(utcTime(new Date(now - 60_000)), utcTime(new Date(now + 86_400_000))),
    subject,
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa3, seq(san)),
  );
  const signature = sign('sha256', tbs, privateKey); // DER ECDSA-Sig-Value
  const der = seq(tbs, ECDSA_SHA256, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}
