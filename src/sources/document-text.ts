import { isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';

/**
 * The text of a config file after a change made through the admin API.
 *
 * A YAML file is edited in place: `next` (the whole new document, as plain
 * JSON values) is laid over the file's parsed document node by node, so
 * every node whose value did not change keeps its comments, anchors and
 * style; list items that carry a `name` (or `id`) are matched by it, so a
 * comment stays with its item when another item is added or removed. A
 * `.json` file is written as formatted JSON.
 */
export function renderDocument(file: string, previousText: string, next: unknown): string {
  if (file.toLowerCase().endsWith('.json')) return `${JSON.stringify(next, null, 2)}\n`;
  const doc = parseDocument(previousText, { uniqueKeys: true, merge: true });
  // A file that does not parse is replaced whole (it was valid when applied, so this is rare).
  if (doc.errors.length > 0 || !isMap(doc.contents)) return new YamlText(next).toString();
  doc.contents = overlay(doc, doc.contents, next) as typeof doc.contents;
  return doc.toString({ lineWidth: 0 });
}

/** A YAML document holding `value`, for files that cannot be edited in place. */
class YamlText {
  private readonly doc: Document;
  constructor(value: unknown) {
    this.doc = parseDocument('{}');
    this.doc.contents = this.doc.createNode(value) as typeof this.doc.contents;
  }
  toString(): string {
    return this.doc.toString({ lineWidth: 0 });
  }
}

/** `node` changed to hold `value`, reusing it (and its comments) where the value is unchanged. */
function overlay(doc: Document, node: unknown, value: unknown): unknown {
  if (isAlias(node) || (node !== null && typeof node === 'object' && 'anchor' in node && (node as Node & { anchor?: string }).anchor)) {
    // An alias or an anchored node is shared: kept only when its value is unchanged, else replaced by a plain copy.
    return sameJson((node as Node).toJS(doc), value) ? node : doc.createNode(value);
  }
  if (isScalar(node) && (value === null || typeof value !== 'object')) {
    if (node.value !== value) node.value = value;
    return node;
  }
  if (isMap(node) && isPlainObject(value)) {
    const keys = new Set(Object.keys(value));
    for (let i = node.items.length - 1; i >= 0; i--) {
      const pair = node.items[i]!;
      const key = isScalar(pair.key) ? pair.key.value : pair.key;
      if (typeof key !== 'string' || !keys.has(key)) node.items.splice(i, 1);
    }
    for (const [key, v] of Object.entries(value)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === key);
      if (pair === undefined) node.items.push(doc.createPair(key, v) as (typeof node.items)[number]);
      else pair.value = overlay(doc, pair.value, v) as typeof pair.value;
    }
    return node;
  }
  if (isSeq(node) && Array.isArray(value)) {
    const identity = (v: unknown): string | undefined => {
      if (!isPlainObject(v)) return undefined;
      const id = v.name ?? v.id;
      return typeof id === 'string' ? id : undefined;
    };
    const byId = new Map<string, unknown>();
    for (const item of node.items) {
      const id = identity(isMap(item) ? (item as Node).toJS(doc) : undefined);
      if (id !== undefined && !byId.has(id)) byId.set(id, item);
    }
    const old = node.items;
    node.items = value.map((v, i) => {
      const id = identity(v);
      const match = id !== undefined ? byId.get(id) : i < old.length && identity(isMap(old[i]) ? (old[i] as Node).toJS(doc) : undefined) === undefined ? old[i] : undefined;
      return (match === undefined ? doc.createNode(v) : overlay(doc, match, v)) as (typeof node.items)[number];
    });
    return node;
  }
  return doc.createNode(value);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
