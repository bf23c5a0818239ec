import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);

/** usearch's package directory (its `exports` hide package.json from `require.resolve`). */
export function usearchPackageDir(): string {
  // The entry point is javascript/dist/cjs/usearch.js inside the package.
  return path.resolve(path.dirname(require.resolve("usearch")), "..", "..", "..");
}

/**
 * The usearch native binary this process loads, decided as usearch's loader (node-gyp-build)
 * decides it: `build/Release/usearch.node` (the source build with the prefetch patch that
 * scripts/usearch/build.sh installs) before the package's prebuilt one, unless `PREBUILDS_ONLY` or
 * `USEARCH_PREBUILD` points the loader elsewhere. E.g. "2.26.2 (source build)".
 */
export function usearchBinary(): string {
  const dir = usearchPackageDir();
  const { version } = require(path.join(dir, "package.json")) as { version: string };
  const redirected = Boolean(process.env.PREBUILDS_ONLY) || Boolean(process.env.USEARCH_PREBUILD);
  const source = !redirected && existsSync(path.join(dir, "build", "Release", "usearch.node"));
  return `${version} (${source ? "source build" : "prebuilt"})`;
}
