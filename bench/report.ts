// The generated sections of docs/benchmarks.md, for the TypeScript benchmarks: written through
// bench/report.py, the one implementation of the docs' `<!-- bench:NAME -->` marker convention.
import { execFileSync } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");
const DOCS = path.join(ROOT, "docs", "benchmarks.md");

/** Replaces the section `name` of docs/benchmarks.md with `body`. */
export function writeSection(name: string, body: string): void {
  execFileSync(
    path.join(ROOT, "inference", ".venv", "bin", "python"),
    [
      "-c",
      "import sys; from pathlib import Path; from bench.report import write_section;" +
        " write_section(Path(sys.argv[1]), sys.argv[2], sys.stdin.read())",
      DOCS,
      name,
    ],
    { cwd: ROOT, input: body },
  );
}
