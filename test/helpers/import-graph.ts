// The import graph of src/ and its cycles. Every edge counts: value imports,
// `import type`, `export … from`, `export type … from` and `import("…")` type
// queries, because a type-only cycle still ties two modules into one unit.
import fs from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/** Module (path relative to the root, `/`-separated) → modules it imports. */
export type ImportGraph = Map<string, string[]>;

/** Every relative module specifier in one source text, in order of appearance. */
export function specifiers(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      out.push(node.moduleSpecifier.text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      out.push(node.argument.literal.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteral(arg)) out.push(arg.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const expr = node.moduleReference.expression;
      if (ts.isStringLiteral(expr)) out.push(expr.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out.filter((s) => s.startsWith('./') || s.startsWith('../'));
}

/**
 * Resolves a relative specifier the way NodeNext + tsc do for this project:
 * `./x.js` → `./x.ts`, `./dir/index.js` → `./dir/index.ts`, `./dir` → `./dir/index.ts`.
 * `exists` answers for paths relative to the root. Returns null when nothing matches.
 */
export function resolveSpecifier(from: string, spec: string, exists: (path: string) => boolean): string | null {
  const base = join(dirname(from), spec).split(sep).join('/');
  const stem = base.replace(/\.(js|mjs|cjs|ts|mts|cts)$/, '');
  for (const candidate of [`${stem}.ts`, `${stem}.mts`, `${stem}.cts`, `${stem}/index.ts`, base]) {
    if (exists(candidate)) return candidate;
  }
  return null;
}

/** Builds the graph of every `.ts` file under `root` (declaration files excluded). */
export function graphOf(root: string): { graph: ImportGraph; unresolved: string[] } {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(relative(root, full).split(sep).join('/'));
    }
  };
  walk(root);
  const known = new Set(files);
  const graph: ImportGraph = new Map();
  const unresolved: string[] = [];
  for (const file of files.sort()) {
    const edges = new Set<string>();
    for (const spec of specifiers(file, fs.readFileSync(resolve(root, file), 'utf8'))) {
      const target = resolveSpecifier(file, spec, (p) => known.has(p));
      if (target === null) unresolved.push(`${file}: ${spec}`);
      else edges.add(target);
    }
    graph.set(file, [...edges].sort());
  }
  return { graph, unresolved };
}

/** Strongly connected components with more than one module, or a module importing itself (Tarjan). */
export function stronglyConnected(graph: ImportGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out: string[][] = [];
  let next = 0;
  // Iterative, so a deep import chain cannot overflow the call stack.
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work: Array<{ node: string; edge: number }> = [{ node: start, edge: 0 }];
    index.set(start, next);
    low.set(start, next++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const edges = graph.get(frame.node) ?? [];
      if (frame.edge < edges.length) {
        const to = edges[frame.edge++]!;
        if (!index.has(to)) {
          index.set(to, next);
          low.set(to, next++);
          stack.push(to);
          onStack.add(to);
          work.push({ node: to, edge: 0 });
        } else if (onStack.has(to)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(to)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        const selfLoop = component.length === 1 && (graph.get(frame.node) ?? []).includes(frame.node);
        if (component.length > 1 || selfLoop) out.push(component.sort());
      }
    }
  }
  return out.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/**
 * One concrete cycle through each component, written `a.ts > b.ts > a.ts`
 * (a shortest path back to the component's first module, so it reads as a real chain of imports).
 */
export function describeCycles(graph: ImportGraph, components: string[][]): string[] {
  return components.map((component) => {
    const members = new Set(component);
    const start = component[0]!;
    const previous = new Map<string, string>();
    const queue = [start];
    let found: string | null = null;
    while (queue.length > 0 && found === null) {
      const node = queue.shift()!;
      for (const to of graph.get(node) ?? []) {
        if (!members.has(to)) continue;
        if (to === start) {
          found = node;
          break;
        }
        if (!previous.has(to)) {
          previous.set(to, node);
          queue.push(to);
        }
      }
    }
    const path = [start];
    for (let node = found; node !== null && node !== start; node = previous.get(node) ?? null) path.splice(1, 0, node);
    path.push(start);
    const others = component.length > path.length - 1 ? ` (component of ${component.length}: ${component.join(', ')})` : '';
    return `${path.join(' > ')}${others}`;
  });
}
