"""A loopback Hugging Face Hub: the subset of the Hub HTTP API that ``huggingface_hub``,
``transformers`` and ``datasets`` use to create repos, upload (preupload, LFS batch + PUT,
NDJSON commit), read metadata (repo info, tree, paths-info, refs) and download (resolve, with
ranges).

No hub is reachable in tests, CI or benchmarks, so the project runs the real client code
against this server instead (set ``HF_ENDPOINT`` to :attr:`HubServer.url` and
``HF_HUB_DISABLE_XET=1``; never ``HF_HUB_OFFLINE``, it blocks loopback too)::

    with HubServer() as hub:
        HfApi(endpoint=hub.url).create_repo("me/tiny")
        ...
        hub.repo_files("me/tiny")   # what actually reached the server

Hand-written on the standard library because no maintained package serves this protocol; it
keeps repos in memory and is meant for small test models, not for production.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".parquet", ".arrow", ".gguf", ".xor", ".enc", ".zip",
                ".gz", ".model", ".h5", ".msgpack", ".onnx", ".ckpt", ".npz")
LFS_MIN_BYTES = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class StoredFile:
    data: bytes
    lfs_sha256: str | None = None

    @property
    def blob_id(self) -> str:
        return git_blob_sha1(self.data)

    def info(self, path: str, expand: bool = False) -> dict:
        item = {"type": "file", "path": path, "size": len(self.data), "oid": self.blob_id}
        if self.lfs_sha256:
            item["lfs"] = {"oid": self.lfs_sha256, "size": len(self.data), "pointerSize": 134}
        if expand:
            item["lastCommit"] = None
            item["securityFileStatus"] = None
        return item


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, StoredFile]
    date: float = field(default_factory=time.time)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool = False
    gated: str | bool = False
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def at(self, revision: str) -> Commit | None:
        if revision in ("main", "refs/heads/main", "HEAD"):
            return self.head
        for commit in self.commits:
            if commit.oid == revision or (len(revision) >= 7 and commit.oid.startswith(revision)):
                return commit
        return None


class HubState:
    """Everything the server stores: repos (with their commit history) and uploaded LFS objects."""

    def __init__(self):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _new_oid() -> str:
    return hashlib.sha1(uuid.uuid4().bytes).hexdigest()


def _card_data(files: dict[str, StoredFile]) -> dict | None:
    readme = files.get("README.md")
    if readme is None:
        return None
    import yaml

    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", readme.data.decode("utf-8", "replace"), re.DOTALL)
    if not match:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _is_private(payload: dict) -> bool:
    """huggingface_hub 1.x sends ``private``; 2.x sends ``visibility: public|private|protected``."""
    if "visibility" in payload:
        return payload["visibility"] != "public"
    return bool(payload.get("private"))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # ----------------------------------------------------------------- plumbing
    def log_message(self, format, *args):  # silence the default per-request stderr log
        pass

    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def endpoint(self) -> str:
        return self.server.url

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json",
              head_only: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not (head_only or self.command == "HEAD") and body:
            self.wfile.write(body)

    def _json(self, payload, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        with self.state.lock:
            self.state.requests.append((method, url.path))
        body = self._body() if method in ("POST", "PUT") else b""
        try:
            self._route(method, url.path, query, body)
        except HubError as error:
            headers = {"X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._json({"error": error.message}, error.status, headers)
        except Exception as error:  # report any server bug to the client as a 500
            self._json({"error": f"loopback hub: {type(error).__name__}: {error}"}, 500)

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    # ----------------------------------------------------------------- routing
    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.state.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.at(unquote(revision))
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _route(self, method: str, path: str, query: dict, body: bytes) -> None:
        parts = path.strip("/").split("/")
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo(json.loads(body or b"{}"))
        if path == "/api/validate-yaml" and method == "POST":
            return self._validate_yaml(json.loads(body or b"{}"))
        if path == "/api/whoami-v2":
            return self._json({"type": "user", "name": "loopback", "orgs": [], "auth": {"type": "access_token"}})
        if path.startswith("/lfs-upload/") and method == "PUT":
            return self._lfs_put(parts[1], body)
        if len(parts) >= 4 and parts[0] == "api" and parts[1] in REPO_TYPES:
            repo_type = REPO_TYPES[parts[1]]
            repo_id = unquote(parts[2]) + "/" + unquote(parts[3])
            return self._api(method, repo_type, repo_id, parts[4:], query, body)
        if path.endswith(".git/info/lfs/objects/batch") and method == "POST":
            return self._lfs_batch(path, json.loads(body))
        # /{prefix}{namespace}/{name}/resolve/{revision}/{path}
        repo_type = "model"
        if parts and parts[0] in ("datasets", "spaces"):
            repo_type = REPO_TYPES[parts[0]]
            parts = parts[1:]
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            repo = self._repo(repo_type, unquote(parts[0]) + "/" + unquote(parts[1]))
            return self._resolve(method, repo, parts[3], "/".join(unquote(p) for p in parts[4:]))
        raise HubError(404, f"loopback hub: no route for {method} {path}")

    def _api(self, method: str, repo_type: str, repo_id: str, rest: list[str], query: dict, body: bytes) -> None:
        repo = self._repo(repo_type, repo_id)
        if not rest and method == "GET":
            return self._json(self._repo_info(repo, repo.head, query))
        action = rest[0] if rest else ""
        if action == "revision" and len(rest) >= 2 and method == "GET":
            return self._json(self._repo_info(repo, self._commit(repo, "/".join(rest[1:])), query))
        if action == "preupload" and method == "POST":
            return self._preupload(repo, json.loads(body))
        if action == "commit" and method == "POST":
            return self._commit_ndjson(repo, "/".join(rest[1:]) or "main", body)
        if action == "tree" and len(rest) >= 2 and method == "GET":
            commit = self._commit(repo, rest[1])
            prefix = "/".join(unquote(p) for p in rest[2:])
            recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
            expand = query.get("expand", ["false"])[0].lower() in ("true", "1")
            return self._json(self._tree(commit, prefix, recursive, expand))
        if action == "paths-info" and len(rest) >= 2 and method == "POST":
            commit = self._commit(repo, rest[1])
            form = parse_qs(body.decode())
            expand = form.get("expand", ["False"])[0].lower() in ("true", "1")
            return self._json(self._paths_info(commit, form.get("paths", []), expand))
        if action == "settings" and method == "PUT":
            settings = json.loads(body or b"{}")
            if "gated" in settings:
                if settings["gated"] not in (False, "auto", "manual"):
                    raise HubError(400, f"invalid gated value {settings['gated']!r}")
                repo.gated = settings["gated"]
            if "private" in settings or "visibility" in settings:
                repo.private = _is_private(settings)
            return self._json({})
        if action == "refs" and method == "GET":
            return self._json({"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": repo.head.oid}],
                               "converts": [], "tags": []})
        if action == "commits" and method == "GET":
            head = self._commit(repo, rest[1] if len(rest) > 1 else "main")
            history = [c for c in repo.commits if c.date <= head.date][::-1]
            return self._json([{"id": c.oid, "title": c.message, "message": c.message, "authors": [],
                                "date": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(c.date))}
                               for c in history])
        raise HubError(404, f"loopback hub: no route for {method} api/{repo_type}s/{repo_id}/{'/'.join(rest)}")

    # ----------------------------------------------------------------- repos
    def _create_repo(self, payload: dict) -> None:
        name, organization = payload.get("name"), payload.get("organization")
        repo_type = payload.get("type") or "model"
        repo_id = f"{organization}/{name}" if organization else (name if "/" in name else f"loopback/{name}")
        url = f"{self.endpoint}/{URL_PREFIX[repo_type]}{repo_id}"
        with self.state.lock:
            if (repo_type, repo_id) in self.state.repos:
                raise HubError(409, "You already created this repo", None)
            repo = Repo(repo_type, repo_id, _is_private(payload))
            repo.commits.append(Commit(_new_oid(), "initial commit",
                                       {".gitattributes": StoredFile(GITATTRIBUTES.encode())}))
            self.state.repos[(repo_type, repo_id)] = repo
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, payload: dict) -> None:
        import yaml

        content = payload.get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.DOTALL)
        if match:
            try:
                data = yaml.safe_load(match.group(1))
            except yaml.YAMLError as error:
                raise HubError(400, f"Invalid YAML in README.md metadata: {error}") from None
            if data is not None and not isinstance(data, dict):
                raise HubError(400, "README.md metadata must be a YAML mapping")
        self._json({"errors": [], "warnings": []})

    def _repo_info(self, repo: Repo, commit: Commit, query: dict) -> dict:
        card = _card_data(commit.files) or {}
        siblings = []
        for path, stored in sorted(commit.files.items()):
            sibling = {"rfilename": path}
            if query.get("blobs") or query.get("expand"):
                sibling.update(size=len(stored.data), blobId=stored.blob_id)
                if stored.lfs_sha256:
                    sibling["lfs"] = {"sha256": stored.lfs_sha256, "size": len(stored.data), "pointerSize": 134}
            siblings.append(sibling)
        tags = list(card.get("tags") or [])
        modified = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.date))
        return {"_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0], "sha": commit.oid, "private": repo.private,
                "gated": repo.gated, "disabled": False,
                "downloads": 0, "likes": 0, "tags": tags, "cardData": card or None, "siblings": siblings,
                "lastModified": modified, "createdAt": modified, "library_name": card.get("library_name"),
                "pipeline_tag": card.get("pipeline_tag")}

    def _tree(self, commit: Commit, prefix: str, recursive: bool, expand: bool) -> list[dict]:
        prefix = prefix.strip("/")
        if prefix and prefix not in commit.files and not any(p.startswith(prefix + "/") for p in commit.files):
            raise HubError(404, f"Path not found: {prefix}", "EntryNotFound")
        items, folders = [], set()
        for path, stored in sorted(commit.files.items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1:] if prefix else path
            pieces = rest.split("/")
            for depth in range(1, len(pieces)):
                folder = "/".join(([prefix] if prefix else []) + pieces[:depth])
                if (recursive or depth == 1) and folder not in folders:
                    folders.add(folder)
                    items.append({"type": "directory", "path": folder, "oid": git_blob_sha1(folder.encode()),
                                  "size": 0})
            if recursive or len(pieces) == 1:
                items.append(stored.info(path, expand))
        return items

    def _paths_info(self, commit: Commit, paths: list[str], expand: bool) -> list[dict]:
        items = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                items.append(commit.files[path].info(path, expand))
            elif any(p.startswith(path + "/") for p in commit.files) or path == "":
                items.append({"type": "directory", "path": path, "oid": git_blob_sha1(path.encode()), "size": 0})
        return items

    # ----------------------------------------------------------------- uploads
    def _preupload(self, repo: Repo, payload: dict) -> None:
        files = []
        for item in payload.get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            lfs = (item["size"] >= LFS_MIN_BYTES or item["path"].endswith(LFS_SUFFIXES) or b"\0" in sample)
            files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
        self._json({"files": files, "commitOid": repo.head.oid})

    def _lfs_batch(self, path: str, payload: dict) -> None:
        objects = []
        for item in payload.get("objects", []):
            entry = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in self.state.lfs_objects:
                entry["actions"] = {"upload": {"href": f"{self.endpoint}/lfs-upload/{item['oid']}", "header": {}}}
            objects.append(entry)
        self._json({"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_put(self, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"LFS object does not match its oid {oid}")
        with self.state.lock:
            self.state.lfs_objects[oid] = body
        self._send(200, b"", headers={"ETag": f'"{oid}"'})

    def _commit_ndjson(self, repo: Repo, revision: str, body: bytes) -> None:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        with self.state.lock:
            parent = self._commit(repo, revision)
            if header.get("parentCommit") and header["parentCommit"] != repo.head.oid:
                raise HubError(412, "A commit has happened since the parent commit; retry with the new head")
            files = dict(parent.files)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                if key == "file":
                    content = value["content"]
                    data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                    files[value["path"]] = StoredFile(data)
                elif key == "lfsFile":
                    data = self.state.lfs_objects.get(value["oid"])
                    if data is None:
                        raise HubError(400, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                    files[value["path"]] = StoredFile(data, value["oid"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    folder = value["path"].rstrip("/") + "/"
                    files = {p: f for p, f in files.items() if not p.startswith(folder)}
                else:
                    raise HubError(400, f"unsupported commit operation {key!r}")
            commit = Commit(_new_oid(), header.get("summary", ""), files)
            repo.commits.append(commit)
        url = f"{self.endpoint}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}"
        self._json({"commitUrl": f"{url}/commit/{commit.oid}", "commitOid": commit.oid, "pullRequestUrl": None,
                    "success": True})

    # ----------------------------------------------------------------- downloads
    def _resolve(self, method: str, repo: Repo, revision: str, path: str) -> None:
        commit = self._commit(repo, revision)
        stored = commit.files.get(path)
        if stored is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes",
                   "ETag": f'"{stored.lfs_sha256 or stored.blob_id}"'}
        if stored.lfs_sha256:
            headers["X-Linked-Etag"] = f'"{stored.lfs_sha256}"'
            headers["X-Linked-Size"] = str(len(stored.data))
        data, status = stored.data, 200
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "") or "")
        if match and data:
            start = int(match.group(1)) if match.group(1) else max(0, len(data) - int(match.group(2)))
            end = int(match.group(2)) if match.group(1) and match.group(2) else len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start:end + 1], 206
        self._send(status, data, headers, content_type="application/octet-stream", head_only=method == "HEAD")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState
    url: str


class HubServer:
    """The loopback Hub on 127.0.0.1 and a free port, served from a background thread.

    Use as a context manager (or call :meth:`start`/:meth:`stop`). :attr:`state` holds the
    repos, so tests can check exactly what was uploaded (:meth:`repo_files`).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.state = HubState()
        self._server = _Server((host, port), _Handler)
        self._server.state = self.state
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._server.url = self.url
        self._thread: threading.Thread | None = None

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def repo_files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        """The files at the head of ``repo_id`` (path -> bytes)."""
        repo = self.state.repos[(repo_type, repo_id)]
        return {path: stored.data for path, stored in repo.head.files.items()}


@contextlib.contextmanager
def clients_pointed_at(url: str, cache_dir: str | os.PathLike) -> Iterator[None]:
    """Point ``huggingface_hub``, ``transformers`` and ``datasets``, already imported in this
    process, at ``url`` with caches under ``cache_dir``; restore everything on exit.

    These libraries read ``HF_ENDPOINT`` once, at import, into module globals; a test process
    has usually imported them before a server exists, so the environment alone is not enough.
    A fresh process only needs ``HF_ENDPOINT=url HF_HUB_DISABLE_XET=1``.
    """
    import datasets.config
    import huggingface_hub.constants as hub_constants
    from huggingface_hub import HfFileSystem, hf_api

    cache_dir = Path(cache_dir)
    patches = [
        (hub_constants, "ENDPOINT", url),
        (hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"),
        (hub_constants, "HF_HUB_DISABLE_XET", True),
        (hub_constants, "HF_HUB_OFFLINE", False),
        (hub_constants, "HF_HUB_CACHE", str(cache_dir / "hub")),
        (hf_api.api, "endpoint", url),
        (datasets.config, "HF_ENDPOINT", url),
        (datasets.config, "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}"),
        (datasets.config, "HF_HUB_OFFLINE", False),
        (datasets.config, "HF_DATASETS_OFFLINE", False),
        (datasets.config, "HF_DATASETS_CACHE", cache_dir / "datasets"),
    ]
    env = {"HF_ENDPOINT": url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_CACHE": str(cache_dir / "hub"),
           "HF_DATASETS_CACHE": str(cache_dir / "datasets")}
    saved_attrs = [(module, name, getattr(module, name)) for module, name, _ in patches if hasattr(module, name)]
    saved_env = {key: os.environ.get(key) for key in [*env, "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                                                       "TRANSFORMERS_OFFLINE"]}
    try:
        for module, name, value in patches:
            if hasattr(module, name):
                setattr(module, name, value)
        for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ.pop(key, None)  # offline mode blocks loopback too
        os.environ.update(env)
        HfFileSystem.clear_instance_cache()
        yield
    finally:
        for module, name, value in saved_attrs:
            setattr(module, name, value)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        HfFileSystem.clear_instance_cache()


def main(argv: list[str] | None = None) -> int:
    """``python -m belle_hf.testing.hub_server [PORT]``: serve until interrupted."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    server = HubServer(port=int(argv[0]) if argv else 0).start()
    print(f"loopback hub at {server.url} (export HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
