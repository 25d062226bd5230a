import { SERVICE_CODE } from '../config/schemas/tunnel.js';
import type { ServiceAnnouncement } from './protocol.js';

const TYPES = new Set(['tcp', 'http', 'grpc', 'udp']);
const HOST = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
/** Hosts one service may claim. */
const MAX_HOSTS = 16;

/**
 * Reads an agent's `services` list as sent (untrusted JSON): well-formed
 * entries become announcements, the rest are refused with why — a bad
 * entry never refuses its neighbours. Beyond `max` services, the excess is
 * refused (a registration flood is capped, not served).
 */
export function readAnnouncements(raw: unknown, max: number): { services: ServiceAnnouncement[]; refused: { code: string; reason: string }[] } {
  const services: ServiceAnnouncement[] = [];
  const refused: { code: string; reason: string }[] = [];
  if (!Array.isArray(raw)) return { services, refused: [{ code: '?', reason: 'services must be a list' }] };
  const seen = new Set<string>();
  for (const entry of raw) {
    const e = (entry !== null && typeof entry === 'object' ? entry : {}) as Record<string, unknown>;
    const code = typeof e.code === 'string' ? e.code : '';
    const label = code.slice(0, 63) || '?';
    if (!SERVICE_CODE.test(code)) {
      refused.push({ code: label, reason: 'code must be 1-63 letters, digits, "_", "." or "-"' });
      continue;
    }
    if (seen.has(code)) {
      refused.push({ code, reason: 'code announced twice' });
      continue;
    }
    seen.add(code);
    if (services.length >= max) {
      refused.push({ code, reason: `too many services (this gateway takes ${max} per connection)` });
      continue;
    }
    const type = typeof e.type === 'string' && TYPES.has(e.type) ? (e.type as ServiceAnnouncement['type']) : undefined;
    if (type === undefined) {
      refused.push({ code, reason: 'type must be tcp, http, grpc or udp' });
      continue;
    }
    const hosts = e.hosts === undefined ? [] : e.hosts;
    if (!Array.isArray(hosts) || hosts.length > MAX_HOSTS || !hosts.every((h) => typeof h === 'string' && h.length <= 253 && HOST.test(h))) {
      refused.push({ code, reason: `hosts must be a list of at most ${MAX_HOSTS} lower-case host names` });
      continue;
    }
    const port = e.remotePort;
    if (port !== undefined && !(Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65_535)) {
      refused.push({ code, reason: 'remotePort must be a port from 1 to 65535' });
      continue;
    }
    services.push({ code, type, hosts: hosts as string[], ...(port !== undefined ? { remotePort: port as number } : {}), up: e.up !== false });
  }
  return { services, refused };
}
