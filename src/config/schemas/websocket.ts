import { z } from 'zod';
import { bool, duration, int } from '../values.js';

/**
 * A route's `websocket:` block. Upgrade requests (RFC 6455 §4) on HTTP/1.1
 * are proxied on every route unless `enabled: false`; these are the limits
 * of the tunnelled connection (see docs/websocket.md). A session keeps the
 * limits of the snapshot it started on.
 */
export const websocketSchema = z.strictObject({
  /** Accept WebSocket upgrades on this route; false refuses them with 403 FORBIDDEN. */
  enabled: bool.default(true),
  /** Close the session when no byte moves in either direction for this long; 0 = never. */
  idleTimeout: duration(0, 86_400_000, '0 to 24h, 0 = off, e.g. 5m').default(300_000),
  /**
   * Largest frame payload a client may send, as on the wire (compressed when
   * permessage-deflate is on); a larger one closes the session with 1009
   * (RFC 6455 §7.4.1). It limits frames, not messages: a fragmented message
   * may be larger in total. Upstream-to-client frames are not limited.
   */
  maxFrameSize: int(125, 1 << 30).default(16 * 1024 * 1024),
});

export type WebSocketConfig = z.output<typeof websocketSchema>;
