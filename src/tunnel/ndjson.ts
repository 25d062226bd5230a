/**
 * Newline-delimited JSON on a stream (the tunnel's control stream): one
 * JSON object per line. A line longer than `maxLine` bytes, or one that is
 * not a JSON object, is an error: the reader stops and says why, and the
 * caller closes the connection.
 */
export class NdjsonReader {
  private parts: Buffer[] = [];
  private size = 0;
  private failed = false;

  constructor(private readonly maxLine: number) {}

  /** The whole objects in `chunk` (with what came before); throws a RangeError or SyntaxError on bad input, once. */
  push(chunk: Buffer): Record<string, unknown>[] {
    if (this.failed) return [];
    const out: Record<string, unknown>[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      this.check(this.size + piece.length);
      const line = this.parts.length === 0 ? piece : Buffer.concat([...this.parts, piece]);
      this.parts = [];
      this.size = 0;
      start = nl + 1;
      if (line.length === 0 || (line.length === 1 && line[0] === 13)) continue;
      out.push(this.parse(line));
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.check(this.size + rest.length);
      this.parts.push(rest);
      this.size += rest.length;
    }
    return out;
  }

  private check(size: number): void {
    if (size <= this.maxLine) return;
    this.failed = true;
    throw new RangeError(`line longer than ${this.maxLine} bytes`);
  }

  private parse(line: Buffer): Record<string, unknown> {
    let v: unknown;
    try {
      v = JSON.parse(line.toString('utf8'));
    } catch {
      this.failed = true;
      throw new SyntaxError('line is not JSON');
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      this.failed = true;
      throw new SyntaxError('line is not a JSON object');
    }
    return v as Record<string, unknown>;
  }
}

export function ndjsonLine(message: object): string {
  return `${JSON.stringify(message)}\n`;
}
