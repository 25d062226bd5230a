import { ResponseParser, type ResponseSink } from '../../src/upstream/h1/parser.js';

/** What the parser made of a byte stream, in a form tests compare. */
export interface Parsed {
  status: number;
  reason: string;
  headers: string[];
  body: string;
  /** Body chunks as handed over (each a view of an input chunk). */
  chunks: Buffer[];
  trailers: string[] | null;
  done: boolean;
  keepAlive: boolean;
  keepAliveHintMs: number;
  /** The parser's error code, or ''. */
  error: string;
  /** Bytes after the response's end, as latin1. */
  rest: string;
}

/**
 * Feeds `chunks` to a fresh parser (the response to a HEAD when `head`),
 * then signals the end of the stream when `eof`. `pauseEvery` pauses the
 * parser after every body chunk and resumes it at once, as a slow
 * downstream would.
 */
export function parseChunks(chunks: Buffer[], o: { head?: boolean; eof?: boolean; pauseEvery?: boolean; maxHeaderSize?: number } = {}): Parsed {
  const out: Parsed = { status: 0, reason: '', headers: [], body: '', chunks: [], trailers: null, done: false, keepAlive: false, keepAliveHintMs: -1, error: '', rest: '' };
  const sink: ResponseSink = {
    onResponseHead(status, reason, raw) {
      if (out.status !== 0) throw new Error('a second head');
      out.status = status;
      out.reason = reason;
      out.headers = raw.map((b) => b.toString('latin1'));
      return true;
    },
    onResponseBody(chunk) {
      if (chunk.length === 0) throw new Error('an empty body chunk');
      out.chunks.push(chunk);
      return !o.pauseEvery;
    },
  };
  const p = new ResponseParser(sink, o.maxHeaderSize);
  p.reset(o.head === true);
  for (const c of chunks) {
    if (p.done) {
      out.rest += c.toString('latin1');
      continue;
    }
    let at = 0;
    for (let guard = 0; guard <= c.length + 1; guard++) {
      const end = p.execute(c, at);
      if (end < 0) {
        out.error = p.error?.code ?? 'halted';
        return finish(out, p);
      }
      if (p.done) {
        out.rest += c.subarray(end).toString('latin1');
        break;
      }
      if (p.paused && end < c.length) {
        at = end;
        continue;
      }
      break;
    }
    if (out.error !== '') break;
  }
  if (o.eof && !p.done && p.finish() === false && out.error === '') out.error = 'EOF';
  return finish(out, p);
}

function finish(out: Parsed, p: ResponseParser): Parsed {
  out.done = p.done;
  out.keepAlive = p.keepAlive;
  out.keepAliveHintMs = p.keepAliveHintMs;
  out.trailers = p.trailers === null ? null : p.trailers.map((b) => b.toString('latin1'));
  out.body = Buffer.concat(out.chunks).toString('latin1');
  return out;
}

/** `text` cut at the given offsets. */
export function splitAt(text: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.max(0, Math.min(text.length, c))))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    if (p > prev) out.push(text.subarray(prev, p));
    prev = p;
  }
  if (prev < text.length) out.push(text.subarray(prev));
  return out;
}
