/**
 * The tunnel transport's names and defaults (docs/tunnel.md): reverse
 * HTTP/2 over TLS. The agent (or a relay service) dials out and is the
 * HTTP/2 *server* on its connection; the gateway is the HTTP/2 *client*
 * and opens one stream per connection it carries to the agent.
 */

/** ALPN of an agent or relay-service connection. */
export const TUNNEL_ALPN = 'portico-tunnel/1';
/** ALPN a relay client may offer (a peer with no ALPN is a client too). */
export const RELAY_ALPN = 'portico-relay/1';

/** The control stream: authentication, then the agent's services and the gateway's verdicts as NDJSON. */
export const CONTROL_PATH = '/portico/control';

/** Request/response headers of the control and data streams (lower case, as HTTP/2 requires). */
export const HEADER = {
  nonce: 'portico-nonce',
  id: 'portico-id',
  proof: 'portico-proof',
  /** The downstream client's `ip:port` (PROXY header source). */
  client: 'portico-client',
  /** The `ip:port` the client connected to (PROXY header destination). */
  server: 'portico-server',
  /** Why a data stream was refused. */
  error: 'portico-error',
} as const;

/** Data stream answers: 200 connected; 404 no such code here; 503 withdrawn; 502 the local service refused or timed out. */
export const STREAM_STATUS = { ok: 200, unknownCode: 404, withdrawn: 503, localFailed: 502 } as const;

/** Longest NDJSON line on the control stream. */
export const MAX_CONTROL_LINE = 64 * 1024;

/** HTTP/2 frame payload size both sides announce (RFC 9113 §6.5.2: 16 KiB to 16 MiB): fewer frames per bulk byte. */
export const MAX_FRAME_SIZE = 256 * 1024;

/** One service as the agent announces it. */
export interface ServiceAnnouncement {
  code: string;
  type: 'tcp' | 'http' | 'grpc' | 'udp';
  hosts: string[];
  remotePort?: number;
  /** False while the agent's health check finds the local service down (withdrawn, still listed). */
  up: boolean;
}

/** Messages on the control stream, agent → gateway. */
export type AgentMessage = { type: 'services'; services: ServiceAnnouncement[] };

/** Messages on the control stream, gateway → agent. */
export type GatewayMessage =
  | { type: 'welcome'; session: string; heartbeat: { interval: number; timeout: number } }
  /** `refusedOmitted`: refusals left out so that the line stays within MAX_CONTROL_LINE (the agent's cap). */
  | { type: 'verdicts'; accepted: string[]; refused: { code: string; reason: string }[]; refusedOmitted?: number }
  | { type: 'refused'; reason: string };
