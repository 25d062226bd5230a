import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Challenge–response proof of an agent's token: the gateway sends a fresh
 * nonce, the agent answers HMAC-SHA256(token, context ‖ nonce ‖ id). The
 * token never crosses the wire, and a proof is good for one nonce only.
 */

const CONTEXT = 'portico-tunnel/1';

export function newNonce(): string {
  return randomBytes(32).toString('base64url');
}

export function proofOf(token: string, nonce: string, id: string): string {
  return createHmac('sha256', token).update(`${CONTEXT}\n${nonce}\n${id}`).digest('base64url');
}

/** Whether `proof` proves `token` for this nonce and id; constant time in the proof's content. */
export function verifyProof(token: string, nonce: string, id: string, proof: string): boolean {
  const expected = Buffer.from(proofOf(token, nonce, id));
  const given = Buffer.from(proof);
  // Lengths are not secret (a base64url SHA-256 is always 43 characters); compare equal lengths only.
  return given.length === expected.length && timingSafeEqual(given, expected);
}
