import {
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import type { Logger } from "pino";

/** The directory of a repo in a Hugging Face cache (`models--org--name`). */
export function repoCacheDir(cacheDir: string, repoId: string): string {
  return path.join(cacheDir, `models--${repoId.replaceAll("/", "--")}`);
}

/**
 * The record, in `cache_dir`, of the repos AkiDB itself downloaded there: only these are ever
 * pruned, so a `cache_dir` shared with other tools (the user's Hugging Face cache) keeps their models.
 */
export const DOWNLOADS_MANIFEST = ".akidb-downloads.json";

interface Manifest {
  /** Repo ids whose cache directory first appeared during a launch of AkiDB's inference process. */
  downloaded: string[];
}

export function readDownloads(cacheDir: string): string[] {
  try {
    const parsed = JSON.parse(
      readFileSync(path.join(cacheDir, DOWNLOADS_MANIFEST), "utf8"),
    ) as Partial<Manifest>;
    return Array.isArray(parsed.downloaded) ? parsed.downloaded.filter((id) => typeof id === "string") : [];
  } catch {
    return [];
  }
}

function writeDownloads(cacheDir: string, downloaded: string[]): void {
  const file = path.join(cacheDir, DOWNLOADS_MANIFEST);
  const manifest: Manifest = { downloaded: [...new Set(downloaded)].sort() };
  // Atomic: a crash mid-write must not lose the record (its loss would only make prune keep more).
  writeFileSync(`${file}.tmp`, `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

/** Records that AkiDB downloaded `repoId` into `cacheDir` (its directory was absent before the launch). */
export function recordDownload(cacheDir: string, repoId: string): void {
  const downloaded = readDownloads(cacheDir);
  if (!downloaded.includes(repoId)) writeDownloads(cacheDir, [...downloaded, repoId]);
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
 * Keeps what AkiDB downloaded into `cacheDir` within `maxBytes` (`embedding.mlx.max_cache_gb`):
 * marks `inUse` (the model's source; a local directory matches no repo) as just used, then deletes
 * the least recently used other repos that the download record lists, each with a warning saying
 * what and why, until AkiDB's downloads fit. Repos it did not download (another tool's, in a
 * shared cache) are never deleted, nor is the repo in use, even if it alone is over the budget.
 * Returns the deleted repo dirs.
 */
export function pruneModelCache(cacheDir: string, maxBytes: number, inUse: string, logger: Logger): string[] {
  if (!existsSync(cacheDir)) return [];
  const keep = repoCacheDir(cacheDir, inUse);
  if (existsSync(keep)) {
    const now = new Date();
    utimesSync(keep, now, now);
  }
  const downloaded = readDownloads(cacheDir);
  const repos = downloaded
    .map((repoId) => ({ repoId, dir: repoCacheDir(cacheDir, repoId) }))
    .filter(({ dir }) => existsSync(dir))
    .map((repo) => ({ ...repo, bytes: diskUsage(repo.dir), usedAt: statSync(repo.dir).mtimeMs }));
  let total = repos.reduce((sum, repo) => sum + repo.bytes, 0);
  const removed: string[] = [];
  for (const repo of repos.filter((r) => r.dir !== keep).sort((a, b) => a.usedAt - b.usedAt)) {
    if (total <= maxBytes) break;
    rmSync(repo.dir, { recursive: true, force: true });
    total -= repo.bytes;
    removed.push(repo.dir);
    logger.warn(
      {
        dir: repo.dir,
        bytes: repo.bytes,
        reason: `AkiDB's downloads in ${cacheDir} take ${total + repo.bytes} bytes, over embedding.mlx.max_cache_gb (${maxBytes} bytes); this is the least recently used one AkiDB downloaded`,
      },
      `deleted the cached model ${repo.repoId} to keep the model cache within embedding.mlx.max_cache_gb`,
    );
  }
  if (removed.length > 0) {
    const gone = new Set(removed);
    writeDownloads(
      cacheDir,
      downloaded.filter((id) => !gone.has(repoCacheDir(cacheDir, id))),
    );
  }
  if (total > maxBytes) {
    logger.warn({ bytes: total, maxBytes }, "the model in use alone exceeds embedding.mlx.max_cache_gb");
  }
  return removed;
}
