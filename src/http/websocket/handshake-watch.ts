import type { Socket } from 'node:net';

/**
 * Until its 101 (or other answer) is out, an upgrading client's socket is
 * watched without being consumed: node:http has let go of it, paused, and
 * whatever the client sends early must reach the upstream after the 101,
 * in order. A 'readable' listener reads only when nothing is buffered, so
 * an end of stream is seen while early bytes stay in the socket's buffer
 * (bounded by its high-water mark, then TCP flow control).
 *
 * A client that sends FIN before its answer has given up (a WebSocket
 * client never half-closes during the handshake): its socket is destroyed,
 * so the phases in progress see it gone (middlewares finish into a 499, an
 * upstream dial is aborted). Errors are swallowed here: 'close' follows.
 */
export function watchHandshake(socket: Socket): void {
  socket.on('error', ignore);
  socket.on('readable', onReadable);
  socket.on('end', onEnd);
}

/** Stops watching: the caller now reads the socket (tunnel) or drains it after an answer. */
export function unwatchHandshake(socket: Socket): void {
  socket.off('readable', onReadable);
  socket.off('end', onEnd);
}

function onReadable(this: Socket): void {
  // Reading an empty buffer is how the end of stream surfaces ('end'); buffered early bytes are left alone.
  if (this.readableLength === 0) this.read();
}

function onEnd(this: Socket): void {
  this.destroy();
}

function ignore(): void {
  /* the socket is destroyed; 'close' does the rest */
}
