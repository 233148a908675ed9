"""A local stand-in for the Hugging Face Hub, for tests only.

`LocalHub` runs two plain HTTP servers on 127.0.0.1 (stdlib `ThreadingHTTPServer`, ephemeral ports, daemon
threads) and keeps every repository in memory. It implements the part of the Hub API that the installed
`huggingface_hub` client (2.x, with ``HF_HUB_DISABLE_XET=1``) and `transformers` call to create a repo, push a
model and load it back, so `push_to_hub` / `from_pretrained("user/name")` can be tested end to end without any
network. It is not a Hub implementation: no git, no pull requests, no Xet, no pagination, no permissions beyond
"writes need the token".

Point the client at it *before* importing `huggingface_hub` (the client reads its environment at import time)::

    HF_ENDPOINT=<hub.endpoint> HF_TOKEN=<hub.token> HF_HOME=<tmp> HF_HUB_DISABLE_XET=1

Routes of the "hub" server (`hub.endpoint`); ``{type}`` is ``models`` or ``datasets``, ``{prefix}`` is empty for
models and ``datasets/`` for datasets:

=========================================================  =====================================================
``GET  /api/whoami-v2``                                    the user owning `hub.token`
``POST /api/repos/create``                                 create a repo (409 if it exists); first commit holds
                                                           the Hub's default ``.gitattributes``
``POST /api/validate-yaml``                                check a README's YAML metadata (400 + ``errors``)
``GET  /api/{type}/{repo}[/revision/{rev}]``               repo info: ``sha``, ``siblings`` (``?blobs=1`` adds
                                                           sizes and LFS info), ``cardData``, ``config``
``GET  /api/{type}/{repo}/tree/{rev}[/{path}]``            tree listing (``?recursive=1``)
``POST /api/{type}/{repo}/paths-info/{rev}``               info on given paths (form body ``paths=...``)
``POST /api/{type}/{repo}/preupload/{rev}``                upload mode per file: ``lfs`` for paths tracked in
                                                           ``.gitattributes``, binary samples or > 10 MiB
``POST /api/{type}/{repo}/commit/{rev}``                   ndjson commit: ``header``, ``file`` (base64),
                                                           ``lfsFile`` (must be uploaded), ``deletedFile``,
                                                           ``deletedFolder``; README metadata validated
``POST /{prefix}{repo}.git/info/lfs/objects/batch``        LFS batch API (upload): actions point to storage;
                                                           objects count per repo, as on the Hub
``POST /{prefix}{repo}.git/info/lfs/objects/verify``       LFS verify
``HEAD|GET /{prefix}{repo}/resolve/{rev}/{path}``          regular file: 200 + ``ETag`` (git sha1),
                                                           ``X-Repo-Commit``, ``Content-Length``; LFS file: 302 to
                                                           storage + ``X-Linked-Etag`` (sha256),
                                                           ``X-Linked-Size``; missing: 404 + ``X-Error-Code``
=========================================================  =====================================================

The "storage" server (`hub.storage_endpoint`, another origin, like the Hub's CDN / S3) takes ``PUT /upload/{oid}``
(checks the sha256) and serves ``HEAD|GET /blobs/{oid}``. Errors follow the Hub: JSON ``{"error": ...}`` plus
``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) and ``X-Error-Message`` headers.

For tests: `hub.requests` records every request (route name, status, whether it carried a token),
`hub.unhandled` every request no route matched, and `hub.inject_failure("commit")` makes the next call to a route
answer HTTP 500.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

__all__ = ["LocalHub", "RequestRecord"]

# The .gitattributes the Hub puts in a new repo (abridged): these patterns are stored with LFS.
LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz "
    "*.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar "
    "*.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*"
)
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS_PATTERNS.split(" ")
)
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
_YAML_BLOCK = re.compile(r"\A\s*---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|\Z)", re.DOTALL)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class StoredFile:
    """One file of a commit: the bytes of a regular file, or the sha256 of an LFS object held by storage."""

    size: int
    git_oid: str
    content: bytes | None = None
    sha256: str | None = None
    pointer_size: int | None = None

    @classmethod
    def regular(cls, content: bytes) -> StoredFile:
        return cls(size=len(content), git_oid=_git_oid(content), content=content)

    @classmethod
    def lfs(cls, sha256: str, size: int) -> StoredFile:
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
        return cls(size=size, git_oid=_git_oid(pointer), sha256=sha256, pointer_size=len(pointer))

    def entry(self, path: str) -> dict:
        """The JSON the Hub's tree and paths-info routes give for this file."""
        info = {"type": "file", "oid": self.git_oid, "size": self.size, "path": path}
        if self.sha256 is not None:
            info["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return info


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    files: dict[str, StoredFile]
    date: str = field(default_factory=_now)


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    lfs_oids: set[str] = field(default_factory=set)  # LFS objects uploaded and verified for this repo
    created_at: str = field(default_factory=_now)

    def add_commit(self, parent: str | None, title: str, files: dict[str, StoredFile], branch: str) -> Commit:
        oid = hashlib.sha1(f"{parent}\n{title}\n{uuid.uuid4()}".encode()).hexdigest()
        commit = Commit(oid=oid, parent=parent, title=title, files=files)
        self.commits[oid] = commit
        self.branches[branch] = oid
        return commit


@dataclass(frozen=True)
class RequestRecord:
    server: str  # "hub" or "storage"
    method: str
    path: str
    route: str | None
    status: int
    authorized: bool  # the request carried an Authorization header


class HubError(Exception):
    """Raised by a route to answer with the Hub's error format."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict | None = None,
        body: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.body = headers or {}, body or {}


def card_metadata_problems(content: str) -> tuple[dict, list[str], list[str]]:
    """Parse a README's YAML block and check it against the Hub's model-card metadata spec.

    Returns ``(metadata, errors, warnings)``; ``metadata`` is ``{}`` when there is none.
    """
    match = _YAML_BLOCK.match(content)
    if match is None:
        return {}, [], ["Empty or missing yaml metadata in repo card"]
    try:
        metadata = yaml.safe_load(match.group(1))
    except yaml.YAMLError as error:
        return {}, [f"Invalid YAML in README.md metadata: {error}"], []
    if metadata is None:
        return {}, [], ["Empty or missing yaml metadata in repo card"]
    if not isinstance(metadata, dict):
        return {}, ["README.md metadata must be a YAML mapping"], []
    errors = []

    def is_str_list(value) -> bool:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)

    for key in ("library_name", "license", "pipeline_tag"):
        if key in metadata and not isinstance(metadata[key], str):
            errors.append(f'"{key}" must be a string')
    for key in ("tags", "metrics"):
        if key in metadata and not is_str_list(metadata[key]):
            errors.append(f'"{key}" must be a list of strings')
    for key in ("datasets", "base_model", "language"):
        if key in metadata and not (isinstance(metadata[key], str) or is_str_list(metadata[key])):
            errors.append(f'"{key}" must be a string or a list of strings')
    model_index = metadata.get("model-index")
    if model_index is not None:
        if not isinstance(model_index, list) or not model_index:
            errors.append('"model-index" must be a non-empty list')
            model_index = []
        for model in model_index:
            if not isinstance(model, dict) or not isinstance(model.get("name"), str):
                errors.append('"model-index[].name" must be a string')
                continue
            for result in model.get("results") or [None]:
                if not isinstance(result, dict):
                    errors.append('"model-index[].results" must be a non-empty list of mappings')
                    continue
                if not isinstance((result.get("task") or {}).get("type"), str):
                    errors.append('"model-index[].results[].task.type" must be a string')
                dataset = result.get("dataset") or {}
                if not (isinstance(dataset.get("type"), str) and isinstance(dataset.get("name"), str)):
                    errors.append('"model-index[].results[].dataset" needs string "type" and "name"')
                metrics = result.get("metrics")
                if not isinstance(metrics, list) or not metrics:
                    errors.append('"model-index[].results[].metrics" must be a non-empty list')
                    continue
                for metric in metrics:
                    if not (
                        isinstance(metric, dict) and isinstance(metric.get("type"), str) and "value" in metric
                    ):
                        errors.append(
                            '"model-index[].results[].metrics[]" needs a string "type" and a "value"'
                        )
    return metadata, errors, []


class LocalHub:
    """In-memory Hub (repos -> commits -> files) served on 127.0.0.1; see the module docstring for the routes.

    Args:
        token: the one token that may write (sent as ``Authorization: Bearer <token>``).
        user: the namespace that `token` belongs to; repos created without an organization go there.
    """

    def __init__(self, token: str = "hf_local_hub_test_token", user: str = "test-user"):
        self.token, self.user = token, user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # the storage server's content, by sha256
        self.requests: list[RequestRecord] = []
        self.unhandled: list[str] = []
        self._failures: dict[str, list[tuple[int, str]]] = {}
        self._lock = threading.RLock()
        self._servers = {
            role: ThreadingHTTPServer(
                ("127.0.0.1", 0), type(f"{role}Handler", (_Handler,), {"hub": self, "role": role})
            )
            for role in ("hub", "storage")
        }
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers['hub'].server_address[1]}"

    @property
    def storage_endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers['storage'].server_address[1]}"

    def start(self) -> LocalHub:
        for server in self._servers.values():
            server.daemon_threads = True
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- test helpers ----------------------------------------------------------------------------------------
    def inject_failure(
        self, route: str, status: int = 500, message: str | None = None, times: int = 1
    ) -> None:
        """Make the next `times` requests to `route` (e.g. ``"commit"``, ``"preupload"``) answer `status`."""
        message = message or f"Internal Error - the local hub was told to fail '{route}'"
        with self._lock:
            self._failures.setdefault(route, []).extend([(status, message)] * times)

    def head(self, repo_id: str, repo_type: str = "model", branch: str = "main") -> str:
        """Commit oid at the tip of `branch`."""
        return self.repos[(repo_type, repo_id)].branches[branch]

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """Content of every file at `revision`."""
        repo = self.repos[(repo_type, repo_id)]
        commit = repo.commits[repo.branches.get(revision, revision)]
        return {
            path: f.content if f.sha256 is None else self.lfs_objects[f.sha256]
            for path, f in commit.files.items()
        }

    def routes_called(self, server: str = "hub", since: int = 0) -> list[str]:
        """Route names of the requests `server` answered, from request number `since` on."""
        return [r.route for r in self.requests[since:] if r.server == server and r.route]

    def client_env(self, hf_home: str | os.PathLike, **extra: str) -> dict[str, str]:
        """Environment for a subprocess whose `huggingface_hub` must talk to this hub and nothing else.

        Drops every inherited ``HF_*`` / ``HUGGINGFACE_*`` variable (an outer ``HF_HUB_OFFLINE`` or token must
        not leak in), then points the client at `endpoint` with `token`, a private cache in `hf_home`, plain
        HTTP (no Xet) uploads and downloads, and no telemetry or progress bars. `extra` is added last.
        """
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))
        }
        env.update(
            HF_ENDPOINT=self.endpoint,
            HF_TOKEN=self.token,
            HF_HOME=str(hf_home),
            HF_HUB_DISABLE_XET="1",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        env.update(extra)
        return env

    # -- shared helpers --------------------------------------------------------------------------------------
    def _take_failure(self, route: str) -> None:
        with self._lock:
            pending = self._failures.get(route)
            if pending:
                status, message = pending.pop(0)
                raise HubError(status, message)

    def _user(self, authorization: str | None) -> str | None:
        if authorization is None:
            return None
        if authorization != f"Bearer {self.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.user

    def _repo(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and user is None):
            raise HubError(404, f"Repository not found: {repo_id}", code="RepoNotFound")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        oid = repo.branches.get(revision, revision)
        if oid not in repo.commits:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return repo.commits[oid]

    def _is_lfs(self, files: dict[str, StoredFile], path: str, size: int, sample: bytes) -> bool:
        if size > LFS_SIZE_THRESHOLD or b"\x00" in sample:
            return True
        gitattributes = files.get(".gitattributes")
        text = (gitattributes.content or b"").decode() if gitattributes is not None else ""
        name = path.rsplit("/", 1)[-1]
        for line in text.splitlines():
            parts = line.split()
            if len(parts) > 1 and "filter=lfs" in parts[1:]:
                pattern = parts[0].replace("**/", "")
                if fnmatch.fnmatchcase(path, pattern) or (
                    "/" not in pattern and fnmatch.fnmatchcase(name, pattern)
                ):
                    return True
        return False

    def _repo_url(self, repo: Repo) -> str:
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return f"{self.endpoint}/{prefix}{repo.repo_id}"


class _Handler(BaseHTTPRequestHandler):
    """Request handler; `hub` and `role` ("hub" or "storage") are set on a subclass per server."""

    hub: LocalHub
    role: str
    protocol_version = "HTTP/1.1"
    # "namespace/name", or a bare "name" (legacy repos such as "gpt2"): asked for one, the Hub answers
    # RepoNotFound (or the repo), which clients turn into RepositoryNotFoundError.
    _REPO = r"(?P<repo>(?:[^/]+/)?[^/]+?)"
    _API = r"/api/(?P<type>models|datasets)/" + _REPO
    _GIT = r"/(?P<prefix>datasets/)?" + _REPO
    ROUTES = {
        "hub": [
            ("GET", r"/api/whoami-v2", "whoami"),
            ("POST", r"/api/repos/create", "create_repo"),
            ("POST", r"/api/validate-yaml", "validate_yaml"),
            ("GET", _API + r"(?:/revision/(?P<rev>[^/]+))?", "repo_info"),
            ("GET", _API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?", "tree"),
            ("POST", _API + r"/paths-info/(?P<rev>[^/]+)", "paths_info"),
            ("POST", _API + r"/preupload/(?P<rev>[^/]+)", "preupload"),
            ("POST", _API + r"/commit/(?P<rev>[^/]+)", "commit"),
            ("POST", _GIT + r"\.git/info/lfs/objects/batch", "lfs_batch"),
            ("POST", _GIT + r"\.git/info/lfs/objects/verify", "lfs_verify"),
            ("HEAD GET", _GIT + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
        ],
        "storage": [
            ("PUT", r"/upload/(?P<oid>[0-9a-f]{64})", "storage_put"),
            ("HEAD GET", r"/blobs/(?P<oid>[0-9a-f]{64})", "storage_get"),
        ],
    }

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    # -- plumbing --------------------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        self.body = self._read_body()
        route, status = None, 500
        try:
            for methods, pattern, name in self.ROUTES[self.role]:
                match = re.fullmatch(pattern, url.path)
                if match and self.command in methods.split():
                    route = name
                    params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    if "type" in params:
                        params["type"] = params["type"][:-1]  # "models" -> "model"
                    elif "prefix" in params or "repo" in params:
                        params["type"] = "dataset" if params.pop("prefix", None) else "model"
                    self.hub._take_failure(name)
                    status = getattr(self, f"route_{name}")(**params)
                    break
            else:
                self.hub.unhandled.append(f"{self.command} {self.path}")
                raise HubError(404, f"Route not implemented by the local hub: {self.command} {url.path}")
        except HubError as error:
            status = error.status
            headers = {"X-Error-Message": error.message, **error.headers}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._send_json(status, {"error": error.message, **error.body}, headers)
        except Exception as error:  # a bug in the stand-in: answer 500 rather than hang the client
            status = 500
            self._send_json(500, {"error": f"local hub crashed: {error!r}"})
        with self.hub._lock:
            self.hub.requests.append(
                RequestRecord(
                    self.role, self.command, url.path, route, status, "authorization" in self.headers
                )
            )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(
        self, status: int, body: bytes = b"", headers: dict | None = None, length: int | None = None
    ) -> int:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def _send_json(
        self, status: int, data, headers: dict | None = None, content_type="application/json"
    ) -> int:
        return self._send(
            status, json.dumps(data).encode(), {"Content-Type": content_type, **(headers or {})}
        )

    def _json_body(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as error:
            raise HubError(400, f"Invalid JSON body: {error}") from error

    def _user(self, required: bool = False) -> str | None:
        user = self.hub._user(self.headers.get("authorization"))
        if required and user is None:
            raise HubError(401, "You must be authenticated to access this resource")
        return user

    def _send_range(self, content: bytes, headers: dict) -> int:
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if not match:
            return self._send(200, content, {"Accept-Ranges": "bytes", **headers})
        start, end = int(match.group(1)), int(match.group(2) or len(content) - 1)
        headers = {"Content-Range": f"bytes {start}-{end}/{len(content)}", **headers}
        return self._send(206, content[start : end + 1], headers)

    # -- hub routes ------------------------------------------------------------------------------------------
    def route_whoami(self) -> int:
        user = self._user(required=True)
        auth = {"type": "access_token", "accessToken": {"displayName": "local-hub", "role": "write"}}
        return self._send_json(
            200, {"type": "user", "name": user, "fullname": user, "orgs": [], "auth": auth}
        )

    def route_create_repo(self) -> int:
        user = self._user(required=True)
        payload = self._json_body()
        name, repo_type = payload.get("name"), payload.get("type") or "model"
        if not name or repo_type not in ("model", "dataset"):
            raise HubError(400, f"Invalid repo name {name!r} or type {repo_type!r}")
        repo_id = f"{payload.get('organization') or user}/{name}"
        with self.hub._lock:
            existing = self.hub.repos.get((repo_type, repo_id))
            if existing is not None:  # the Hub answers 409 with the url, which `exist_ok=True` callers read
                message = f"You already created this {repo_type} repo: {repo_id}"
                raise HubError(409, message, body={"url": self.hub._repo_url(existing)})
            repo = Repo(repo_id, repo_type, private=payload.get("visibility", "public") != "public")
            gitattributes = StoredFile.regular(DEFAULT_GITATTRIBUTES.encode())
            repo.add_commit(None, "initial commit", {".gitattributes": gitattributes}, "main")
            self.hub.repos[(repo_type, repo_id)] = repo
        return self._send_json(
            200, {"url": self.hub._repo_url(repo), "name": repo_id, "id": uuid.uuid4().hex}
        )

    def route_validate_yaml(self) -> int:
        payload = self._json_body()
        _, errors, warnings = card_metadata_problems(payload.get("content") or "")
        body = {"errors": [{"message": m} for m in errors], "warnings": [{"message": m} for m in warnings]}
        return self._send_json(400 if errors else 200, body)

    def route_repo_info(self, type: str, repo: str, rev: str = "main") -> int:
        repo_obj = self.hub._repo(type, repo, self._user())
        commit = self.hub._commit(repo_obj, rev)
        siblings = []
        for path, f in sorted(commit.files.items()):
            sibling = {"rfilename": path}
            if self.query.get("blobs", "").lower() in ("1", "true"):
                sibling.update(size=f.size, blobId=f.git_oid)
                if f.sha256 is not None:
                    sibling["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": f.pointer_size}
            siblings.append(sibling)
        info = {
            "_id": hashlib.md5(repo.encode()).hexdigest()[:24],
            "id": repo,
            "author": repo.split("/")[0],
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo_obj.created_at,
            "private": repo_obj.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(f.size for f in commit.files.values()),
        }
        if type == "model":
            info["modelId"] = repo
        readme = commit.files.get("README.md")
        if readme is not None and readme.content is not None:
            metadata, _, _ = card_metadata_problems(readme.content.decode("utf-8", "replace"))
            info["cardData"] = metadata
            info["tags"] = list(metadata.get("tags") or [])
            for key in ("library_name", "pipeline_tag", "model-index"):
                if key in metadata:
                    info[key] = metadata[key]
        config = commit.files.get("config.json")
        if type == "model" and config is not None and config.content is not None:
            full = json.loads(config.content)
            info["config"] = {k: full[k] for k in ("architectures", "model_type", "auto_map") if k in full}
        return self._send_json(200, info)

    def _entries(self, commit: Commit, base: str, recursive: bool) -> list[dict]:
        prefix = f"{base}/" if base else ""
        entries, folders = [], {}
        for path, f in commit.files.items():
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                folders.setdefault(folder, hashlib.sha1(folder.encode()))
                folders[folder].update(f.git_oid.encode())
                if not recursive:
                    break
            if recursive or len(parts) == 1:
                entries.append(f.entry(path))
        entries += [
            {"type": "directory", "oid": h.hexdigest(), "size": 0, "path": p} for p, h in folders.items()
        ]
        return sorted(entries, key=lambda entry: entry["path"])

    def route_tree(self, type: str, repo: str, rev: str, path: str = "") -> int:
        commit = self.hub._commit(self.hub._repo(type, repo, self._user()), rev)
        path = path.strip("/")
        recursive = self.query.get("recursive", "").lower() in ("1", "true")
        entries = self._entries(commit, path, recursive)
        if path and not entries:
            raise HubError(404, f"Entry not found: {path}", code="EntryNotFound")
        return self._send_json(200, entries)

    def route_paths_info(self, type: str, repo: str, rev: str) -> int:
        commit = self.hub._commit(self.hub._repo(type, repo, self._user()), rev)
        form = parse_qs(self.body.decode())
        paths = [p.strip("/") for p in form.get("paths", [])]
        folders = {
            e["path"]: e for e in self._entries(commit, "", recursive=True) if e["type"] == "directory"
        }
        found = [commit.files[p].entry(p) if p in commit.files else folders.get(p) for p in paths]
        return self._send_json(200, [entry for entry in found if entry is not None])

    def route_preupload(self, type: str, repo: str, rev: str) -> int:
        commit = self.hub._commit(self.hub._repo(type, repo, self._user(required=True)), rev)
        answers = []
        for item in self._json_body().get("files", []):
            path, size, sample = item["path"], int(item["size"]), base64.b64decode(item.get("sample", ""))
            lfs = self.hub._is_lfs(commit.files, path, size, sample)
            remote = commit.files.get(path)
            oid = None if remote is None else (remote.sha256 if lfs else remote.git_oid)
            answers.append(
                {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        return self._send_json(200, {"files": answers, "commitOid": commit.oid})

    def route_commit(self, type: str, repo: str, rev: str) -> int:
        repo_obj = self.hub._repo(type, repo, self._user(required=True))
        if self.query.get("create_pr"):
            raise HubError(400, "Pull requests are not supported by the local hub")
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first line of a commit must be its header")
        header = lines[0]["value"]
        with self.hub._lock:
            if rev not in repo_obj.branches:
                raise HubError(
                    404, f"Invalid rev id: {rev} (commits go to a branch)", code="RevisionNotFound"
                )
            base = repo_obj.commits[repo_obj.branches[rev]]
            parent = header.get("parentCommit")
            if parent and not base.oid.startswith(parent):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(base.files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value") or {}
                path = value.get("path", "")
                if key == "file":
                    content = base64.b64decode(value["content"])
                    if content and self.hub._is_lfs(base.files, path, len(content), content[:512]):
                        raise HubError(
                            400, f"Your push was rejected because {path} is a binary file: upload it via LFS"
                        )
                    files[path] = StoredFile.regular(content)
                elif key == "lfsFile":
                    oid = value.get("oid", "")
                    data = self.hub.lfs_objects.get(oid) if oid in repo_obj.lfs_oids else None
                    if data is None or ("size" in value and len(data) != value["size"]):
                        raise HubError(400, f"LFS object {value.get('oid')} for {path} was not uploaded")
                    files[path] = StoredFile.lfs(oid, len(data))
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(
                            404, f"A file with this name doesn't exist: {path}", code="EntryNotFound"
                        )
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    files = {p: f for p, f in files.items() if not p.startswith(prefix)}
                else:
                    raise HubError(400, f"Unknown commit operation {key!r}")
            readme = files.get("README.md")
            if (
                readme is not None
                and readme is not base.files.get("README.md")
                and readme.content is not None
            ):
                _, errors, _ = card_metadata_problems(readme.content.decode("utf-8", "replace"))
                if errors:
                    raise HubError(400, "Invalid metadata in README.md.\n- " + "\n- ".join(errors))
            commit = repo_obj.add_commit(base.oid, header.get("summary") or "", files, rev)
        url = f"{self.hub._repo_url(repo_obj)}/commit/{commit.oid}"
        return self._send_json(
            200, {"success": True, "commitOid": commit.oid, "commitUrl": url, "hookOutput": ""}
        )

    def route_lfs_batch(self, type: str, repo: str) -> int:
        repo_obj = self.hub._repo(type, repo, self._user(required=True))
        payload = self._json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, "Only LFS uploads are supported by the local hub")
        objects = []
        for item in payload.get("objects", []):
            oid, size = item["oid"], int(item["size"])
            entry = {"oid": oid, "size": size, "authenticated": True}
            if not _SHA256.fullmatch(oid):
                entry["error"] = {"code": 422, "message": f"Invalid oid {oid}"}
            elif (
                oid not in repo_obj.lfs_oids
            ):  # like the Hub, objects count per repo: upload for each new repo
                verify_url = f"{self.hub.endpoint}/{'' if type == 'model' else 'datasets/'}{repo}.git/info/lfs/objects/verify"
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.storage_endpoint}/upload/{oid}", "expires_in": 3600},
                    "verify": {"href": verify_url, "header": {}, "expires_in": 3600},
                }
            objects.append(entry)
        return self._send_json(
            200, {"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json"
        )

    def route_lfs_verify(self, type: str, repo: str) -> int:
        repo_obj = self.hub._repo(type, repo, self._user(required=True))
        payload = self._json_body()
        data = self.hub.lfs_objects.get(payload.get("oid", ""))
        if data is None or len(data) != payload.get("size"):
            raise HubError(404, f"LFS object {payload.get('oid')} not found in storage")
        with self.hub._lock:
            repo_obj.lfs_oids.add(payload["oid"])
        return self._send_json(200, {"success": True})

    def route_resolve(self, type: str, repo: str, rev: str, path: str) -> int:
        commit = self.hub._commit(self.hub._repo(type, repo, self._user()), rev)
        stored = commit.files.get(path)
        if stored is None:
            raise HubError(
                404, f"Entry not found: {path}", code="EntryNotFound", headers={"X-Repo-Commit": commit.oid}
            )
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{stored.git_oid}"'}
        if stored.sha256 is None:
            return self._send_range(stored.content, {"Content-Type": "application/octet-stream", **headers})
        name = path.rsplit("/", 1)[-1]
        location = f"{self.hub.storage_endpoint}/blobs/{stored.sha256}?filename={name}"
        headers.update(
            {"Location": location, "X-Linked-Etag": f'"{stored.sha256}"', "X-Linked-Size": stored.size}
        )
        return self._send(302, b"", headers)

    # -- storage routes --------------------------------------------------------------------------------------
    def route_storage_put(self, oid: str) -> int:
        if hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match sha256 {oid}")
        with self.hub._lock:
            self.hub.lfs_objects[oid] = self.body
        return self._send(200, b"", {"ETag": f'"{hashlib.md5(self.body).hexdigest()}"'})

    def route_storage_get(self, oid: str) -> int:
        content = self.hub.lfs_objects.get(oid)
        if content is None:
            raise HubError(404, f"No such blob: {oid}")
        name = self.query.get("filename", oid)
        headers = {"Content-Type": "application/octet-stream", "ETag": f'"{oid}"'}
        headers["Content-Disposition"] = f'attachment; filename="{name}";'
        return self._send_range(content, headers)
