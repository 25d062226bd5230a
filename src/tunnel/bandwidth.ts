import { Transform, type TransformCallback, type TransformOptions } from 'node:stream';
import { performance } from 'node:perf_hooks';

/**
 * Bandwidth limits of tunnelled services (`bandwidth: "10MiB"`, bytes per
 * second, each direction): a token bucket and a Transform that lets bytes
 * through at the bucket's pace.
 *
 * The bucket holds at most `burst` tokens (one token = one byte), starts
 * full and refills at `rate` tokens per second. So over any interval of t
 * seconds since the bucket was made, at most burst + rate·t bytes pass.
 */

/** Smallest burst: one maximal chunk (a 64 KiB socket read or HTTP/2 DATA frame) passes without being split by the bucket's size. */
export const MIN_BURST = 64 * 1024;

export interface TokenBucketOptions {
  /** Bytes per second (> 0, finite). */
  rate: number;
  /** Bucket size in bytes; default `rate`; raised to MIN_BURST when below. */
  burst?: number;
  /** Monotonic clock in ms; default performance.now. */
  now?: () => number;
}

/**
 * A token bucket. Several Throttles may share one (a per-service limit over
 * all its streams); each then waits for its own share, without fairness
 * guarantees between them.
 */
export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  constructor({ rate, burst, now = performance.now.bind(performance) }: TokenBucketOptions) {
    if (!Number.isFinite(rate) || rate <= 0) throw new RangeError(`bandwidth rate must be a positive number of bytes per second, got ${rate}`);
    if (burst !== undefined && (!Number.isFinite(burst) || burst <= 0)) throw new RangeError(`bandwidth burst must be a positive number of bytes, got ${burst}`);
    this.rate = rate;
    this.burst = Math.max(MIN_BURST, Math.floor(burst ?? rate));
    this.#now = now;
    this.#tokens = this.burst;
    this.#at = now();
  }

  /** Whole tokens available now. */
  available(): number {
    const now = this.#now();
    if (now > this.#at) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.rate) / 1000);
      this.#at = now;
    }
    // The epsilon absorbs float error: after waiting delayFor(n), n tokens are available, not n − 1.
    return Math.floor(this.#tokens + 1e-6);
  }

  /** Spends `n` tokens; the caller checked available() ≥ n. */
  take(n: number): void {
    this.#tokens -= n;
  }

  /** Ms until `n` (≤ burst) tokens are available; 0 if they are now. */
  delayFor(n: number): number {
    const missing = Math.min(n, this.burst) - this.available();
    return missing <= 0 ? 0 : (missing * 1000) / this.rate;
  }
}

export interface ThrottleOptions extends Omit<TransformOptions, 'transform' | 'flush' | 'objectMode' | 'readableObjectMode' | 'writableObjectMode'> {
  /** Bytes per second; ignored when `bucket` is given. */
  rate?: number;
  /** Bucket size; see TokenBucketOptions. */
  burst?: number;
  /** A bucket shared with other Throttles (instead of rate/burst). */
  bucket?: TokenBucket;
}

/**
 * A pass-through stream limited by a token bucket.
 *
 * Contract:
 *   - Chunks go through as they are (the same Buffer objects) when the
 *     bucket holds enough tokens; a chunk larger than the tokens available
 *     is split into views of itself (never copied): the part the tokens
 *     cover now, the rest when min(rest, burst) tokens have refilled.
 *   - Backpressure is the Transform's: a chunk's callback runs only when
 *     all of it was pushed, so one chunk at most is in progress; writes
 *     return false once the writable buffer is over its highWaterMark, and
 *     the next chunk is not taken while the readable side is full.
 *   - At most one timer exists, only while a chunk waits for tokens;
 *     destroy() clears it (the waiting chunk is dropped), and end() flushes
 *     only once every chunk passed, so no timer or handle outlives the
 *     stream.
 */
export class Throttle extends Transform {
  readonly bucket: TokenBucket;
  #timer: NodeJS.Timeout | null = null;

  constructor(options: ThrottleOptions) {
    const { rate, burst, bucket, ...streamOptions } = options;
    super(streamOptions);
    if (bucket !== undefined) this.bucket = bucket;
    else if (rate === undefined) throw new RangeError('a Throttle needs a rate or a bucket');
    else this.bucket = new TokenBucket(burst === undefined ? { rate } : { rate, burst });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#send(chunk, callback);
  }

  #send(chunk: Buffer, callback: TransformCallback): void {
    this.#timer = null;
    if (this.destroyed) return;
    let rest = chunk;
    const bucket = this.bucket;
    const tokens = bucket.available();
    if (tokens >= rest.length) {
      bucket.take(rest.length);
      this.push(rest);
      return callback();
    }
    if (tokens > 0) {
      bucket.take(tokens);
      this.push(rest.subarray(0, tokens));
      rest = rest.subarray(tokens);
    }
    // Wait until the rest (or a full bucket, for a chunk larger than the bucket) is covered.
    const delay = Math.max(1, Math.ceil(bucket.delayFor(rest.length)));
    this.#timer = setTimeout(() => this.#send(rest, callback), delay);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    callback(error);
  }
}
