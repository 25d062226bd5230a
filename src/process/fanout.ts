import type { Worker } from 'node:cluster';
import type { Logger } from '../observability/logger.js';

/**
 * Asks between sibling processes of `workers: N`, over node:cluster IPC.
 *
 * A worker (the one serving the admin API) asks the primary; the primary
 * forwards the ask to every other worker that serves (or to one, `to`),
 * collects each answer for at most ASK_TIMEOUT_MS and answers the asker
 * with every reply tagged by worker index and pid:
 *
 *   asker ──ask{id}──▶ primary ──ask{id'}──▶ worker k … ──answer{id'}──▶ primary ──replies{id}──▶ asker
 *
 * Contracts:
 * - Every message is `{ type: 'portico:fanout-…', id, … }`. A message of
 *   another type, or a malformed one, is ignored (never thrown on), so
 *   node:cluster's own messages, the ready report and other libraries' pass by.
 * - An ask never hangs: a worker that does not answer in time, whose channel
 *   fails, or that exits before answering is reported `missing`. The asker
 *   itself stops waiting ASK_TIMEOUT_MS + ASKER_MARGIN_MS after asking (a
 *   primary that never answers), reporting every peer missing.
 * - A slot that does not serve (starting, or waiting to be replaced) is not
 *   asked; it is reported `starting`.
 * - IPC send failures are caught or passed to callbacks: no error of this
 *   module ends a process.
 * - What is asked (`Ask.kind` and its fields) is opaque here: the answering
 *   worker's handler (cluster-admin.ts) validates it.
 */

/** How long the primary waits for each worker's answer. */
export const ASK_TIMEOUT_MS = 5_000;
/** The asker's extra wait beyond ASK_TIMEOUT_MS before it gives up on the primary. */
const ASKER_MARGIN_MS = 1_000;

/** One ask: a kind and its plain-JSON fields. */
export interface Ask {
  kind: string;
  [field: string]: unknown;
}

/** One worker's part of a fan-out. */
export type Reply =
  | { index: number; pid: number; ok: true; value: unknown }
  /** The worker's handler failed (`error`). */
  | { index: number; pid: number; ok: false; error: string }
  /** No answer: timed out, channel failed or the worker exited (`missing`), or the slot does not serve yet (`starting`). */
  | { index: number; pid: number | null; ok: false; error: string; missing?: true; starting?: true };

const ASK = 'portico:fanout-ask';
const ANSWER = 'portico:fanout-answer';
const REPLIES = 'portico:fanout-replies';

interface AskMessage {
  type: typeof ASK;
  id: number;
  ask: Ask;
  /** Only this worker slot (e.g. the owner of a connection id). */
  to?: number;
}
interface AnswerMessage {
  type: typeof ANSWER;
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}
interface RepliesMessage {
  type: typeof REPLIES;
  id: number;
  replies: Reply[];
}

function isObject(m: unknown): m is Record<string, unknown> {
  return typeof m === 'object' && m !== null && !Array.isArray(m);
}
function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 1024;
}

/** An ask (asker → primary, or primary → worker), or undefined when `m` is not a well-formed one. */
export function parseAsk(m: unknown): AskMessage | undefined {
  if (!isObject(m) || m.type !== ASK || !isId(m.id) || !isObject(m.ask) || typeof m.ask.kind !== 'string') return undefined;
  if (m.to !== undefined && !isIndex(m.to)) return undefined;
  return { type: ASK, id: m.id, ask: m.ask as Ask, ...(m.to !== undefined ? { to: m.to } : {}) };
}

/** A worker's answer to the primary, or undefined when malformed. */
export function parseAnswer(m: unknown): AnswerMessage | undefined {
  if (!isObject(m) || m.type !== ANSWER || !isId(m.id) || typeof m.ok !== 'boolean') return undefined;
  if (!m.ok && typeof m.error !== 'string') return undefined;
  return m.ok ? { type: ANSWER, id: m.id, ok: true, value: m.value } : { type: ANSWER, id: m.id, ok: false, error: m.error as string };
}

/** The primary's replies to an asker, or undefined when malformed. */
export function parseReplies(m: unknown): RepliesMessage | undefined {
  if (!isObject(m) || m.type !== REPLIES || !isId(m.id) || !Array.isArray(m.replies)) return undefined;
  const replies: Reply[] = [];
  for (const r of m.replies as unknown[]) {
    if (!isObject(r) || !isIndex(r.index) || typeof r.ok !== 'boolean') return undefined;
    if (!(r.pid === null || (typeof r.pid === 'number' && Number.isInteger(r.pid)))) return undefined;
    if (!r.ok && typeof r.error !== 'string') return undefined;
    replies.push(r as unknown as Reply);
  }
  return { type: REPLIES, id: m.id, replies };
}

/** Sends on this process's IPC channel; false when there is none. Failures go to `failed`, never thrown. */
function sendToPrimary(message: unknown, failed: (err: Error) => void = () => undefined): boolean {
  if (typeof process.send !== 'function' || !process.connected) return false;
  try {
    process.send(message, undefined, undefined, (err) => {
      if (err) failed(err);
    });
    return true;
  } catch (err) {
    failed(err as Error);
    return false;
  }
}

function sendToWorker(worker: Worker, message: unknown, failed: (err: Error) => void): void {
  try {
    if (!worker.isConnected()) return failed(new Error('IPC channel closed'));
    worker.send(message as object, undefined, (err: Error | null) => {
      if (err) failed(err);
    });
  } catch (err) {
    failed(err as Error);
  }
}

// ------------------------------------------------------------------ worker side

/** Answers asks forwarded by the primary. Throwing or rejecting answers `{ ok: false, error }`. */
export type AskHandler = (ask: Ask) => unknown;

let handler: AskHandler | undefined;
const waiting = new Map<number, { done: (replies: Reply[]) => void }>();
let nextAskId = 1;
let listening = false;

function onWorkerMessage(m: unknown): void {
  const replies = parseReplies(m);
  if (replies) {
    const w = waiting.get(replies.id);
    if (w) w.done(replies.replies);
    return;
  }
  const ask = parseAsk(m);
  if (!ask) return;
  const answer = (a: Omit<AnswerMessage, 'type' | 'id'>) => sendToPrimary({ type: ANSWER, id: ask.id, ...a });
  const h = handler;
  if (!h) return void answer({ ok: false, error: 'this worker answers no asks' });
  let result: Promise<unknown>;
  try {
    result = Promise.resolve(h(ask.ask));
  } catch (err) {
    result = Promise.reject(err);
  }
  result.then(
    (value) => answer({ ok: true, value }),
    (err: unknown) => answer({ ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
}

function listen(): void {
  if (listening) return;
  listening = true;
  process.on('message', onWorkerMessage);
}

/** Makes this worker answer the primary's forwarded asks with `h` (replacing any earlier handler). */
export function answerAsks(h: AskHandler): void {
  handler = h;
  listen();
}

/**
 * Asks every other serving worker (or only slot `to`) through the primary;
 * resolves with one reply per other slot (asked or not), never rejects.
 * It resolves `[]` when the primary cannot be reached or does not answer in
 * time (and without an IPC channel): the caller, which knows how many
 * slots there are, reports the absent ones as missing.
 */
export function askOthers(ask: Ask, to?: number): Promise<Reply[]> {
  if (typeof process.send !== 'function') return Promise.resolve([]);
  listen();
  const id = nextAskId++;
  return new Promise<Reply[]>((resolve) => {
    // No answer from the primary (or no channel): no replies; the caller counts every slot it expected as missing.
    const timer = setTimeout(() => finish([]), ASK_TIMEOUT_MS + ASKER_MARGIN_MS);
    const finish = (replies: Reply[]) => {
      if (!waiting.delete(id)) return;
      clearTimeout(timer);
      resolve(replies);
    };
    waiting.set(id, { done: finish });
    const message: AskMessage = { type: ASK, id, ask, ...(to !== undefined ? { to } : {}) };
    if (!sendToPrimary(message, () => finish([]))) finish([]);
  });
}

// ------------------------------------------------------------------ primary side

/** A worker slot as the relay sees it. */
export interface RelaySlot {
  readonly index: number;
  readonly worker: Worker | undefined;
  readonly ready: boolean;
}

interface Pending {
  readonly asker: Worker;
  readonly askerId: number;
  /** Forwarded, not answered yet: worker → its reply slot. */
  readonly open: Map<Worker, { index: number; pid: number }>;
  readonly replies: Reply[];
  timer: NodeJS.Timeout | undefined;
}

/**
 * The primary's side: forwards each ask it receives to the other serving
 * workers and answers the asker. The supervisor feeds it every worker
 * message (`onMessage`) and every worker exit (`onExit`).
 */
export class AskRelay {
  private readonly slots: () => readonly RelaySlot[];
  /** Told of each slot that is not asked because it does not serve yet (e.g. to reload it once it does). */
  private readonly notServing: (index: number, ask: Ask) => void;
  private readonly logger: Logger | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(slots: () => readonly RelaySlot[], notServing: (index: number, ask: Ask) => void = () => undefined, logger?: Logger) {
    this.slots = slots;
    this.notServing = notServing;
    this.logger = logger;
  }

  /** A message from `from`: an ask to forward or an answer to collect; anything else is ignored. */
  onMessage(from: Worker, m: unknown): void {
    const answer = parseAnswer(m);
    if (answer) return this.collect(from, answer);
    const ask = parseAsk(m);
    if (ask) this.forward(from, ask);
  }

  /** A worker exited: whatever it was asked counts as missing; what it asked is dropped. */
  onExit(worker: Worker): void {
    for (const [id, p] of this.pending) {
      if (p.asker === worker) {
        clearTimeout(p.timer);
        this.pending.delete(id);
        continue;
      }
      const slot = p.open.get(worker);
      if (!slot) continue;
      p.open.delete(worker);
      p.replies.push({ ...slot, ok: false, error: 'the worker exited before answering', missing: true });
      this.settle(id, p);
    }
  }

  private forward(asker: Worker, m: AskMessage): void {
    const id = this.nextId++;
    const replies: Reply[] = [];
    const open = new Map<Worker, { index: number; pid: number }>();
    const targets: { index: number; worker: Worker; pid: number }[] = [];
    for (const s of this.slots()) {
      if (s.worker === asker || (m.to !== undefined && s.index !== m.to)) continue;
      const pid = s.worker?.process.pid;
      if (s.worker && s.ready && pid !== undefined) {
        open.set(s.worker, { index: s.index, pid });
        targets.push({ index: s.index, worker: s.worker, pid });
      } else {
        replies.push({ index: s.index, pid: pid ?? null, ok: false, error: 'the worker is starting', starting: true });
        this.notServing(s.index, m.ask);
      }
    }
    const timer = setTimeout(() => {
      const p = this.pending.get(id);
      if (!p) return;
      for (const slot of p.open.values()) p.replies.push({ ...slot, ok: false, error: `no answer within ${ASK_TIMEOUT_MS / 1000} s`, missing: true });
      p.open.clear();
      this.settle(id, p);
    }, ASK_TIMEOUT_MS);
    const p: Pending = { asker, askerId: m.id, open, replies, timer };
    this.pending.set(id, p);
    this.logger?.debug({ ask: m.ask.kind.slice(0, 64), workers: targets.map((x) => x.index) }, 'relaying an ask to the workers');
    for (const t of targets) {
      sendToWorker(t.worker, { type: ASK, id, ask: m.ask }, (err) => {
        if (!p.open.delete(t.worker)) return;
        p.replies.push({ index: t.index, pid: t.pid, ok: false, error: `cannot reach the worker: ${err.message}`, missing: true });
        this.settle(id, p);
      });
    }
    this.settle(id, p);
  }

  private collect(from: Worker, m: AnswerMessage): void {
    const p = this.pending.get(m.id);
    const slot = p?.open.get(from);
    if (!p || !slot) return; // late (timed out), or from a worker that was not asked
    p.open.delete(from);
    p.replies.push(m.ok ? { ...slot, ok: true, value: m.value } : { ...slot, ok: false, error: m.error! });
    this.settle(m.id, p);
  }

  /** Answers the asker once nothing is open. */
  private settle(id: number, p: Pending): void {
    if (p.open.size > 0 || !this.pending.has(id)) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.replies.sort((a, b) => a.index - b.index);
    sendToWorker(p.asker, { type: REPLIES, id: p.askerId, replies: p.replies }, () => undefined);
  }
}
