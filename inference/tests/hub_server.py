"""A local stand-in for the Hugging Face Hub: the endpoints huggingface_hub's downloads call, over
real HTTP, for repos built from directories. Point `HF_ENDPOINT` (or `endpoint=`) at `url`.

    GET  /api/models/{repo}/revision/{rev}   repo info: commit sha and file list
    HEAD /{repo}/resolve/{rev}/{file}        X-Repo-Commit, ETag, Content-Length
    GET  /{repo}/resolve/{rev}/{file}        the bytes

Errors carry the Hub's X-Error-Code header (RepoNotFound, RevisionNotFound, EntryNotFound), which is
how huggingface_hub tells them apart. `fail(method, path, status, times)` makes the next `times`
matching requests fail, to test retries.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass
class Repo:
    commit: str
    files: dict[str, bytes]
    """Path in the repo -> content. A name listed in `unservable` is listed but answers 404."""
    unservable: set[str] = field(default_factory=set)


def repo_from_directory(directory: Path, commit: str) -> Repo:
    files = {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }
    return Repo(commit=commit, files=files)


@dataclass
class HubServer:
    url: str
    repos: dict[str, Repo]
    requests: list[tuple[str, str]]
    """(method, path) of every request, in order."""
    _failures: dict[tuple[str, str], list[int]]
    _lock: threading.Lock

    def fail(self, method: str, path: str, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures.setdefault((method, path), []).extend([status] * times)

    def take_failure(self, method: str, path: str) -> int | None:
        with self._lock:
            pending = self._failures.get((method, path))
            return pending.pop(0) if pending else None

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))


_INFO = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>[^/]+)")
_RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)")


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test reads `hub.requests` instead."""

        def _serve(self, *, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.record(self.command, path)
            if (status := hub.take_failure(self.command, path)) is not None:
                self._send(status, b"transient failure", {})
                return
            if match := _INFO.fullmatch(path):
                self._info(match["repo"], unquote(match["rev"]))
            elif match := _RESOLVE.fullmatch(path):
                self._file(match["repo"], match["rev"], match["file"], body=body)
            else:
                self._send(404, b"not found", {})

        def _repo(self, name: str, revision: str) -> Repo | None:
            repo = hub.repos.get(name)
            if repo is None:
                self._send(404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"})
                return None
            if revision not in ("main", repo.commit):
                self._send(404, b'{"error":"Revision not found"}', {"X-Error-Code": "RevisionNotFound"})
                return None
            return repo

        def _info(self, name: str, revision: str) -> None:
            if (repo := self._repo(name, revision)) is None:
                return
            info = {"id": name, "sha": repo.commit, "siblings": [{"rfilename": f} for f in repo.files]}
            self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})

        def _file(self, name: str, revision: str, filename: str, *, body: bool) -> None:
            if (repo := self._repo(name, revision)) is None:
                return
            content = repo.files.get(filename)
            if content is None or filename in repo.unservable:
                headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.commit}
                self._send(404, b'{"error":"Entry not found"}', headers)
                return
            headers = {
                "X-Repo-Commit": repo.commit,
                "ETag": f'"{hashlib.sha256(content).hexdigest()}"',
                "Content-Type": "application/octet-stream",
            }
            self._send(200, content, headers, body=body)

        def _send(self, status: int, content: bytes, headers: dict[str, str], *, body: bool = True) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(content)

    return Handler


@contextmanager
def serve_hub(repos: dict[str, Repo]) -> Iterator[HubServer]:
    hub = HubServer(url="", repos=repos, requests=[], _failures={}, _lock=threading.Lock())
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="hub", daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
