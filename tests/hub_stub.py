"""A stand-in for the Hugging Face Hub: a loopback HTTP server answering ``resolve`` URLs from a folder.

The real ``huggingface_hub`` client talks to it through ``HF_ENDPOINT``, so downloads, the cache,
the client's own retries and ours all run as they would against the Hub. Like the Hub, a HEAD names
the commit, the ETag (sha256 of the file for ``.json`` files, as for LFS files; the git blob id for
the rest) and the size; a GET sends the whole file (a client asking for a ``Range`` copes with
that, as with any server that ignores one). ``etags="opaque"`` gives ETags that are no
checksum, as a non-Hub mirror might. ``fault`` picks requests to spoil: it is called with
(method, path, GETs answered so far) and returns None, an HTTP status, ``"drop"`` (close without an
answer) or ``"cut"`` (announce the whole file, send half, close). ``bodies`` serves other bytes for a
path, as if the file on the Hub itself were broken. ``log`` records every request.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote

from huggingface_hub.utils.sha import git_hash
from loopback import LoopbackServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubStub(LoopbackServer):
    def __init__(self, root: Path, etags: str = "hash", models: dict[str, Path] | None = None):
        self.root, self.etags = Path(root), etags
        self.models = {repo: Path(folder) for repo, folder in (models or {}).items()}
        self.fault = None
        self.bodies: dict[str, bytes] = {}
        self.log: list[tuple[str, str, object]] = []  # (method, repo path, status or fault)
        self._lock = threading.Lock()
        super().__init__()

    def do_HEAD(self, handler: BaseHTTPRequestHandler) -> None:
        self._answer(handler, head=True)

    def do_GET(self, handler: BaseHTTPRequestHandler) -> None:
        self._answer(handler, head=False)

    def gets(self, outcome: object = 200) -> list[str]:
        """Paths of the GETs that ended with ``outcome`` (a status or a fault), in order."""
        return [path for method, path, result in self.log if method == "GET" and result == outcome]

    def etag(self, path: str, body: bytes) -> str:
        if self.etags == "opaque":
            return "opaque-" + hashlib.md5(path.encode()).hexdigest()
        return hashlib.sha256(body).hexdigest() if path.endswith(".json") else git_hash(body)

    def _answer(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        method = "HEAD" if head else "GET"
        # /datasets/<owner>/<name>/resolve/<revision>/<path>
        parts = unquote(handler.path.split("?")[0]).lstrip("/").split("/")
        if parts[:2] == ["api", "models"] and "/".join(parts[2:4]) in self.models:
            return self._model_listing(handler, method, parts)
        if "/".join(parts[:2]) in self.models and len(parts) >= 5 and parts[2] == "resolve":
            return self._file(handler, method, "/".join(parts), self.models["/".join(parts[:2])], "/".join(parts[4:]),
                              None)
        if len(parts) < 6 or parts[0] != "datasets" or parts[3] != "resolve" or parts[4] not in ("main", COMMIT):
            return self._status(handler, method, "/".join(parts), 404, "RepoNotFound")
        path = "/".join(parts[5:])
        with self._lock:
            answered = len(self.gets())
        action = self.fault(method, path, answered) if self.fault else None
        if action == "drop":
            self._record(method, path, "drop")
            handler.close_connection = True
            return
        if isinstance(action, int):
            return self._status(handler, method, path, action)
        self._file(handler, method, path, self.root, path, action)

    def _file(self, handler, method: str, logged: str, root: Path, path: str, action: object) -> None:
        head = method == "HEAD"
        file = (root / path).resolve()
        if path not in self.bodies and (not file.is_relative_to(root.resolve()) or not file.is_file()):
            return self._status(handler, method, logged, 404, "EntryNotFound")
        body = self.bodies.get(path) or file.read_bytes()
        cut = action == "cut" and not head
        # logged before the first byte goes out: a client that has its answer finds it in the log
        self._record(method, logged, "cut" if cut else 200)
        handler.send_response(200)
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("ETag", f'"{self.etag(path, body)}"')
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if head:
            return
        if cut:
            handler.wfile.write(body[:len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(body)

    def _model_listing(self, handler, method: str, parts: list[str]) -> None:
        """``/api/models/<repo>/revision/<rev>`` (the commit) or ``/api/models/<repo>/tree/<rev>`` (the files)."""
        repo, kind = "/".join(parts[2:4]), parts[4] if len(parts) > 4 else "revision"
        folder = self.models[repo]
        if kind == "tree":
            answer = [{"type": "file", "path": file.name, "size": file.stat().st_size,
                       "oid": git_hash(file.read_bytes())} for file in sorted(folder.iterdir()) if file.is_file()]
        else:
            answer = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": f.name} for f in folder.iterdir()]}
        body = json.dumps(answer).encode()
        self._record(method, "/".join(parts), 200)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if method == "GET":
            handler.wfile.write(body)

    def _status(self, handler, method: str, path: str, status: int, code: str | None = None) -> None:
        self._record(method, path, status)
        handler.send_response(status)
        handler.send_header("X-Repo-Commit", COMMIT)
        if code:
            handler.send_header("X-Error-Code", code)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _record(self, method: str, path: str, outcome: object) -> None:
        with self._lock:
            self.log.append((method, path, outcome))
