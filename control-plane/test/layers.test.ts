import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../src");
/** The composition roots: they wire every layer together, so they may import any of them. */
const ROOTS = new Set(["server.ts", "cli.ts"]);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** Relative import specifiers of a module, type-only ones included (they couple layers too). */
export function relativeImports(source: string): string[] {
  const found: string[] = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(?\s*)["'](\.{1,2}\/[^"']+)["']/g;
  for (const match of source.matchAll(pattern)) found.push(match[1] as string);
  return found;
}

/** A module's unit: its folder under src/, or the file itself for modules at the top of src/. */
function unitOf(file: string): string {
  const rel = relative(SRC, file);
  return rel.includes(sep) ? (rel.split(sep)[0] as string) : rel;
}

/** Edges between units: `from` imports at least one module of `to` (files under src/ only). */
export function unitGraph(): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>();
  for (const file of sourceFiles(SRC)) {
    const from = unitOf(file);
    for (const spec of relativeImports(readFileSync(file, "utf8"))) {
      const target = resolve(dirname(file), spec);
      if (!target.startsWith(SRC + sep)) continue;
      const to = unitOf(target);
      if (to === from) continue;
      const edges = graph.get(from) ?? new Map<string, string>();
      edges.set(to, `${relative(SRC, file)} -> ${spec}`);
      graph.set(from, edges);
    }
  }
  return graph;
}

/** One cycle of the graph as a list of the imports that close it, or undefined when acyclic. */
export function findCycle(graph: Map<string, Map<string, string>>): string[] | undefined {
  const state = new Map<string, "visiting" | "done">();
  const path: string[] = [];
  const visit = (unit: string): string[] | undefined => {
    state.set(unit, "visiting");
    path.push(unit);
    for (const next of graph.get(unit)?.keys() ?? []) {
      if (state.get(next) === "visiting") {
        const loop = [...path.slice(path.indexOf(next)), next];
        return loop.slice(1).map((to, i) => graph.get(loop[i] as string)?.get(to) as string);
      }
      if (!state.has(next)) {
        const cycle = visit(next);
        if (cycle) return cycle;
      }
    }
    path.pop();
    state.set(unit, "done");
    return undefined;
  };
  for (const unit of graph.keys()) {
    if (!state.has(unit)) {
      const cycle = visit(unit);
      if (cycle) return cycle;
    }
  }
  return undefined;
}

describe("control-plane/src layering", () => {
  it("parses static, type-only, side-effect and dynamic imports", () => {
    const source = [
      'import { a } from "../errors.ts";',
      'import type { B } from "./b.ts";',
      'export { c } from "../c/c.ts";',
      'import "./side.ts";',
      'const d = await import("../d.ts");',
      'import { e } from "hono";',
    ].join("\n");
    expect(relativeImports(source)).toEqual(["../errors.ts", "./b.ts", "../c/c.ts", "./side.ts", "../d.ts"]);
  });

  it("only http/ and the composition roots import from http/", () => {
    const offenders = sourceFiles(SRC)
      .filter((file) => unitOf(file) !== "http" && !ROOTS.has(unitOf(file)))
      .flatMap((file) =>
        relativeImports(readFileSync(file, "utf8"))
          .filter((spec) => unitOf(resolve(dirname(file), spec)) === "http")
          .map((spec) => `${relative(SRC, file)} -> ${spec}`),
      );
    expect(offenders).toEqual([]);
  });

  it("finds a cycle when there is one", () => {
    const graph = new Map([
      ["a", new Map([["b", "a/x.ts -> ../b/y.ts"]])],
      ["b", new Map([["a", "b/y.ts -> ../a/x.ts"]])],
    ]);
    expect(findCycle(graph)).toEqual(["a/x.ts -> ../b/y.ts", "b/y.ts -> ../a/x.ts"]);
    expect(findCycle(new Map([["a", new Map([["b", "a -> b"]])]]))).toBeUndefined();
  });

  it("has no import cycle between folders of src/", () => {
    expect(findCycle(unitGraph())).toBeUndefined();
  });

  it("names no inference engine outside config/: model settings are read through config/model-settings.ts", () => {
    const offenders = sourceFiles(SRC)
      .filter((file) => unitOf(file) !== "config")
      .filter((file) => namesEngine(readFileSync(file, "utf8")))
      .map((file) => relative(SRC, file));
    expect(offenders).toEqual([]);
    expect(namesEngine("const { mlx, queue } = config.embedding;")).toBe(true);
    expect(namesEngine('if (mode === "mlx") start();')).toBe(true);
    expect(namesEngine("const dir = config.embedding.mlx.cache_dir;")).toBe(true);
    expect(namesEngine('// the spec\'s embedding.mlx.model key\nconst source = "mlx-community/x";')).toBe(
      false,
    );
  });
});

/**
 * Whether code reads the `embedding.mlx` section or compares with the mode `mlx`. Comments and
 * strings aside: messages may name the user's keys.
 */
function namesEngine(source: string): boolean {
  // Line by line, so a quote inside a regex literal cannot swallow the rest of the file.
  return source
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .split("\n")
    .map((line) =>
      line
        .replace(/\/\/.*$/, "")
        .replace(/(["'`])(?:\\.|(?!\1)[^\\])*\1/g, (literal) =>
          /^["']mlx["']$/.test(literal) ? literal : '""',
        ),
    )
    .some((line) =>
      /\bembedding\.mlx\b|\{[^}]*\bmlx\b[^}]*\}\s*=\s*[\w.]*\bembedding\b|["']mlx["']/.test(line),
    );
}
