import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';

/**
 * Reads a YAML (or JSON, a subset) config document into plain data, with
 * errors that point at a line and column. Never throws.
 *
 * Anchors and aliases are ordinary YAML and ordinary reuse is allowed (120
 * upstreams each with `timeouts: *t` is a normal file). What is refused is
 * an expansion bomb: the size of the document once every alias is expanded
 * is counted (nodes produced, not aliases written), and a document whose
 * expansion exceeds `MAX_EXPANDED_NODES` is refused naming the alias that
 * crossed the limit. A recursive alias (an anchor used inside itself) is
 * refused too: it has no finite expansion. `<<` merge keys are supported.
 */

/** The most nodes a document may expand to (a large real config has some tens of thousands). */
export const MAX_EXPANDED_NODES = 1_000_000;

export interface YamlProblem {
  message: string;
  /** 1-based. */
  line: number;
  column: number;
  /** A few lines of the source with a caret under the column. */
  frame: string;
}

export type YamlResult = { ok: true; data: unknown } | { ok: false; problem: YamlProblem };

export function readYaml(text: string): YamlResult {
  const lines = new LineCounter();
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, merge: true, lineCounter: lines });
  } catch (err) {
    return { ok: false, problem: at(text, lines, 0, `cannot parse: ${(err as Error).message}`) };
  }
  // One error is shown: the ones after the first are usually its consequences.
  const first = doc.errors[0];
  if (first !== undefined) return { ok: false, problem: at(text, lines, first.pos[0], firstLine(first.message)) };
  try {
    const bomb = checkExpansion(doc);
    if (bomb !== undefined) return { ok: false, problem: at(text, lines, bomb.offset, bomb.message) };
    // Counted above, so the library's own alias heuristic is not needed.
    return { ok: true, data: doc.toJS({ maxAliasCount: -1 }) ?? null };
  } catch (err) {
    // A stack overflow on absurd nesting, or a library error: refused, never thrown.
    return { ok: false, problem: at(text, lines, 0, `cannot read the document: ${(err as Error).message}`) };
  }
}

/**
 * The size of the document with every alias expanded, computed once per
 * anchored node (so a bomb is measured without being expanded). Returns the
 * first alias that takes the size past the limit, or that refers to a node
 * containing it.
 */
function checkExpansion(doc: Document.Parsed): { offset: number; message: string } | undefined {
  // Each alias refers to the closest anchor of its name before it, in document order.
  const targets = new Map<Node, Node>();
  const anchors = new Map<string, Node>();
  let aliases = 0;
  let unresolved: { offset: number; message: string } | undefined;
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) {
        aliases++;
        const target = anchors.get(node.source);
        if (target !== undefined) targets.set(node, target);
        else unresolved ??= { offset: node.range?.[0] ?? 0, message: `alias *${node.source} has no anchor &${node.source} before it` };
      } else if (node.anchor) {
        anchors.set(node.anchor, node);
      }
    },
  });
  if (aliases === 0 || unresolved !== undefined) return unresolved;

  const sizes = new Map<Node, number>();
  const open = new Set<Node>();
  let problem: { offset: number; message: string } | undefined;
  const size = (node: unknown): number => {
    if (problem !== undefined || node === null || node === undefined) return 0;
    if (isPair(node)) return size(node.key) + size(node.value);
    if (isScalar(node)) return 1;
    const n = node as Node;
    const known = sizes.get(n);
    if (known !== undefined) return known;
    if (open.has(n)) return 0;
    let total = 1;
    if (isAlias(n)) {
      const target = targets.get(n);
      if (target === undefined) return 1;
      if (open.has(target)) {
        problem = { offset: n.range?.[0] ?? 0, message: `alias *${n.source} refers to a node that contains it (a recursive alias has no finite expansion)` };
        return 0;
      }
      total = size(target);
    } else if (isMap(n) || isSeq(n)) {
      open.add(n);
      for (const item of n.items) {
        total += size(item);
        if (problem === undefined && total > MAX_EXPANDED_NODES) {
          // Point at the item that crossed the limit (the alias written there, for a bomb).
          const node = (isPair(item) ? (isAlias(item.value) ? item.value : item.key) : item) as Node | null;
          const used = node !== null && isAlias(node) ? `*${node.source} used here takes it` : 'it goes';
          problem = {
            offset: node?.range?.[0] ?? n.range?.[0] ?? 0,
            message: `the document expands to more than ${MAX_EXPANDED_NODES.toLocaleString('en-US')} nodes once aliases are expanded (${used} past the limit: an alias expansion bomb?)`,
          };
        }
        if (problem !== undefined) break;
      }
      open.delete(n);
    }
    sizes.set(n, total);
    return total;
  };
  const total = size(doc.contents);
  if (problem === undefined && total > MAX_EXPANDED_NODES) {
    problem = { offset: 0, message: `the document expands to more than ${MAX_EXPANDED_NODES.toLocaleString('en-US')} nodes` };
  }
  return problem;
}

function firstLine(message: string): string {
  return message.split('\n', 1)[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

/** A problem at a byte offset: its line, column and a code frame of the line before and the line itself. */
function at(text: string, lines: LineCounter, offset: number, message: string): YamlProblem {
  const { line, col } = lines.linePos(Math.max(0, Math.min(offset, text.length)));
  const source = text.split(/\r?\n/);
  const gutter = String(line).length;
  const frame: string[] = [];
  for (let n = Math.max(1, line - 1); n <= line; n++) {
    const l = source[n - 1];
    if (l === undefined) continue;
    frame.push(`${n === line ? '>' : ' '} ${String(n).padStart(gutter)} | ${l.length > 160 ? `${l.slice(0, 160)}…` : l}`);
  }
  frame.push(`  ${' '.repeat(gutter)} | ${' '.repeat(Math.max(0, col - 1))}^`);
  return { message, line, column: col, frame: frame.join('\n') };
}
