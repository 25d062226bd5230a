import { closeSync, constants, accessSync, fsyncSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/**
 * Replaces `file` with `text` so that a reader sees the old file or the new
 * one, never a mix, and a crash leaves one of the two: the text goes to a
 * temporary file beside it (same folder, so the same file system), is
 * fsynced, renamed over the file (rename(2) is atomic), and the folder is
 * fsynced so the rename itself is durable. The file's mode is kept. Throws
 * with the system's reason; the temporary file never outlives a failure.
 */
export function writeFileAtomically(file: string, text: string): void {
  const dir = dirname(file);
  const temp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let mode = 0o644;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    // a new file: the default mode
  }
  const fd = openSync(temp, 'wx', mode);
  try {
    const data = Buffer.from(text, 'utf8');
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkQuietly(temp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(temp, file);
  } catch (err) {
    unlinkQuietly(temp);
    throw err;
  }
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // Some file systems cannot fsync a folder: the rename is still atomic, only its durability is the file system's.
  }
}

/** Why `file` cannot be replaced by writeFileAtomically (the file or its folder not writable), or undefined. */
export function notWritable(file: string): string | undefined {
  for (const [path, what] of [
    [file, 'the config file'],
    [dirname(file), 'the config file’s folder'],
  ] as const) {
    try {
      accessSync(path, constants.W_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      return `${what} ${path} is not writable (${code})`;
    }
  }
  return undefined;
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
