// src/ has no import cycles, type-only imports included (DESIGN.md, Layering):
// every layer imports downward only, so any module can be read, tested and
// moved with only what sits beneath it.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { describeCycles, graphOf, type ImportGraph, resolveSpecifier, specifiers, stronglyConnected } from '../helpers/import-graph.js';

// build/test/unit/ → repository root.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function graph(edges: Record<string, string[]>): ImportGraph {
  return new Map(Object.entries(edges));
}

describe('import cycle detector', () => {
  it('finds every kind of import, type-only included', () => {
    const text = [
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      "export { c } from './c.js';",
      "export type { D } from './d/index.js';",
      "export * from './e.js';",
      "let f: import('./f.js').F;",
      "const g = await import('./g.js');",
      "import fs from 'node:fs';",
      "import './h.js';",
    ].join('\n');
    assert.deepEqual(specifiers('x/y.ts', text), ['./a.js', '../b.js', './c.js', './d/index.js', './e.js', './f.js', './g.js', './h.js']);
  });

  it('resolves .js to .ts and folders to index.ts', () => {
    const files = new Set(['http/route.ts', 'net/index.ts', 'config/schema.ts']);
    const exists = (p: string): boolean => files.has(p);
    assert.equal(resolveSpecifier('http/context.ts', './route.js', exists), 'http/route.ts');
    assert.equal(resolveSpecifier('http/context.ts', '../net/index.js', exists), 'net/index.ts');
    assert.equal(resolveSpecifier('http/context.ts', '../net', exists), 'net/index.ts');
    assert.equal(resolveSpecifier('l4/schema.ts', '../config/schema.js', exists), 'config/schema.ts');
    assert.equal(resolveSpecifier('l4/schema.ts', './missing.js', exists), null);
  });

  it('finds a cycle and names it as a chain of imports', () => {
    const g = graph({
      'a.ts': ['b.ts'],
      'b.ts': ['c.ts'],
      'c.ts': ['a.ts', 'd.ts'],
      'd.ts': [],
      'e.ts': ['e.ts'],
    });
    const components = stronglyConnected(g);
    assert.deepEqual(components, [['a.ts', 'b.ts', 'c.ts'], ['e.ts']]);
    assert.deepEqual(describeCycles(g, components), ['a.ts > b.ts > c.ts > a.ts', 'e.ts > e.ts']);
  });

  it('accepts a DAG, diamonds included', () => {
    const g = graph({
      'top.ts': ['left.ts', 'right.ts'],
      'left.ts': ['bottom.ts'],
      'right.ts': ['bottom.ts'],
      'bottom.ts': [],
    });
    assert.deepEqual(stronglyConnected(g), []);
  });

  it('handles a long chain without recursion limits', () => {
    const edges: Record<string, string[]> = {};
    for (let i = 0; i < 20_000; i++) edges[`m${i}.ts`] = [`m${i + 1}.ts`];
    edges['m20000.ts'] = ['m0.ts'];
    const components = stronglyConnected(graph(edges));
    assert.equal(components.length, 1);
    assert.equal(components[0]!.length, 20_001);
  });
});

describe('src/ import graph', () => {
  const { graph: g, unresolved } = graphOf(join(ROOT, 'src'));

  it('parses every module and resolves every relative import', () => {
    assert.ok(g.size > 50, `only ${g.size} modules found under src/`);
    assert.deepEqual(unresolved, []);
  });

  it('keeps config/ a leaf (config/ and net/ only) and net/ self-contained', () => {
    const allowed: Record<string, readonly string[]> = { 'config/': ['config/', 'net/'], 'net/': ['net/'] };
    const outside: string[] = [];
    for (const [from, edges] of g) {
      const layer = Object.keys(allowed).find((l) => from.startsWith(l));
      if (layer === undefined) continue;
      for (const to of edges) if (!allowed[layer]!.some((l) => to.startsWith(l))) outside.push(`${from} > ${to}`);
    }
    assert.deepEqual(outside, []);
  });

  it('keeps the top layers on top: only what sits above imports them', () => {
    // DESIGN.md, Layering: compile sits above the implementations it assembles; the gateway, config sources and admin on top.
    const importers: Record<string, readonly string[]> = {
      'cli/': ['cli/'],
      'gateway.ts': ['cli/'],
      // The admin API reads and writes the config through its source; the gateway holds the source it serves.
      'sources/': ['cli/', 'sources/', 'admin/', 'gateway.ts'],
      'admin/': ['gateway.ts', 'admin/'],
      // Store clients serve the config sources, discovery, registrations and the CLI's push/pull.
      'stores/': ['stores/', 'sources/', 'discovery/', 'cli/'],
      'snapshot/compile.ts': ['gateway.ts'],
      'listeners/': ['gateway.ts', 'listeners/'],
    };
    const upward: string[] = [];
    for (const [from, edges] of g) {
      for (const to of edges) {
        const layer = Object.keys(importers).find((l) => to.startsWith(l));
        if (layer !== undefined && !importers[layer]!.some((l) => from.startsWith(l))) upward.push(`${from} > ${to}`);
      }
    }
    assert.deepEqual(upward, []);
  });

  it('has no import cycles, type-only imports included', () => {
    const cycles = describeCycles(g, stronglyConnected(g));
    assert.deepEqual(cycles, [], `import cycles in src/:\n${cycles.join('\n')}`);
  });
});
