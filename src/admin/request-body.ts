import type http from 'node:http';
import { readYaml } from '../config/yaml-document.js';
import { adminError, type AdminError } from './reply.js';

/** The largest request body the admin API reads (a whole config document fits with room to spare). */
export const MAX_ADMIN_BODY = 1024 * 1024;

/** Media types a body may have: JSON (and `+json` types such as merge-patch), and YAML where `yaml` is allowed. */
export interface BodyTypes {
  /** `application/merge-patch+json` (RFC 7396) is accepted. */
  mergePatch?: boolean;
  /** `application/yaml` (and `application/x-yaml`, `text/yaml`) is accepted: a config document as written in a file. */
  yaml?: boolean;
}

/**
 * Reads and parses a request body: 415 UNSUPPORTED_MEDIA_TYPE for another
 * content type, 413 BODY_TOO_LARGE past `max` bytes (declared or sent),
 * 400 INVALID_JSON (or INVALID_YAML) when it does not parse. A body over the
 * cap is not read further: the caller's answer closes the connection.
 */
export async function readBody(req: http.IncomingMessage, types: BodyTypes = {}, max = MAX_ADMIN_BODY): Promise<unknown | AdminError> {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
  const isJson = type === 'application/json' || (types.mergePatch === true && type === 'application/merge-patch+json');
  const isYaml = types.yaml === true && (type === 'application/yaml' || type === 'application/x-yaml' || type === 'text/yaml');
  if (!isJson && !isYaml) {
    const accepted = ['application/json', ...(types.mergePatch ? ['application/merge-patch+json'] : []), ...(types.yaml ? ['application/yaml'] : [])];
    return adminError(415, 'UNSUPPORTED_MEDIA_TYPE', `the body must be ${accepted.join(' or ')} (got ${type === '' ? 'no content type' : `"${type.slice(0, 64)}"`})`);
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) return tooLarge(max);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) return tooLarge(max);
      chunks.push(chunk);
    }
  } catch {
    return adminError(400, 'BAD_REQUEST', 'the request body was cut off');
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (isYaml) {
    const parsed = readYaml(text);
    if (!parsed.ok) return adminError(400, 'INVALID_YAML', `the body is not valid YAML: line ${parsed.problem.line}, column ${parsed.problem.column}: ${parsed.problem.message}`);
    return parsed.data ?? null;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    return adminError(400, 'INVALID_JSON', `the body is not valid JSON: ${(err as Error).message}`);
  }
}

function tooLarge(max: number): AdminError {
  return adminError(413, 'BODY_TOO_LARGE', `the body is larger than ${max} bytes`);
}
