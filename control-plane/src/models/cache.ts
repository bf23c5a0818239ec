import { existsSync, lstatSync, readdirSync, rmSync, statSync, utimesSync } from "node:fs";
import path from "node:path";
import type { Logger } from "pino";

/** The directory of a repo in a Hugging Face cache (`models--org--name`). */
export function repoCacheDir(cacheDir: string, repoId: string): string {
  return path.join(cacheDir, `models--${repoId.replaceAll("/", "--")}`);
}

/** Bytes of the regular files under `dir` (snapshot symlinks point into `blobs`, so they are skipped). */
function diskUsage(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += diskUsage(full);
    else if (entry.isFile()) total += lstatSync(full).size;
  }
  return total;
}

/**
 * Keeps `cacheDir` within `maxBytes` (`embedding.mlx.max_cache_gb`): marks `inUse` (the model's
 * source; a local directory matches no repo) as just used, then deletes the least recently used other repos until the cache fits. The repo
 * in use is never deleted, even if it alone is over the budget. Returns the deleted repo dirs.
 */
export function pruneModelCache(cacheDir: string, maxBytes: number, inUse: string, logger: Logger): string[] {
  if (!existsSync(cacheDir)) return [];
  const keep = repoCacheDir(cacheDir, inUse);
  if (existsSync(keep)) {
    const now = new Date();
    utimesSync(keep, now, now);
  }
  const repos = readdirSync(cacheDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && entry.name.startsWith("models--"))
    .map((entry) => {
      const dir = path.join(cacheDir, entry.name);
      return { dir, bytes: diskUsage(dir), usedAt: statSync(dir).mtimeMs };
    });
  let total = repos.reduce((sum, repo) => sum + repo.bytes, 0);
  const removed: string[] = [];
  for (const repo of repos.filter((r) => r.dir !== keep).sort((a, b) => a.usedAt - b.usedAt)) {
    if (total <= maxBytes) break;
    rmSync(repo.dir, { recursive: true, force: true });
    total -= repo.bytes;
    removed.push(repo.dir);
    logger.info({ dir: repo.dir, bytes: repo.bytes }, "model cache over embedding.mlx.max_cache_gb: deleted");
  }
  if (total > maxBytes) {
    logger.warn({ bytes: total, maxBytes }, "the model in use alone exceeds embedding.mlx.max_cache_gb");
  }
  return removed;
}
