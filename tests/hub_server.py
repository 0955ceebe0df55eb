"""A small local stand-in for the Hugging Face Hub, speaking the routes huggingface_hub 2.x uses for a push.

Routes (read off huggingface_hub 2.4: ``hf_api.py``, ``_commit_api.py`` and ``_upload_pipeline.py``, the path
``HfApi.upload_folder`` takes when hf_xet is installed; it needs no other route while every file is "regular"):

- ``GET  /api/whoami-v2``                         -> account JSON, 401 without a valid ``Authorization: Bearer``
- ``POST /api/repos/create``                      -> ``{"url": ...}``; body ``{name, organization, visibility?}``;
                                                     409 when the repo exists (the client's ``exist_ok`` accepts it)
- ``GET  /api/models/{repo}[/revision/{rev}]``    -> repo info (``create_repo`` calls it after a 403 with exist_ok)
- ``POST /api/validate-yaml``                     -> ``{"errors": [], "warnings": []}``; 400 when the YAML is broken
- ``POST /api/models/{repo}/preupload/{rev}``     -> every file ``uploadMode: "regular"`` (content sent inline, so
                                                     no LFS/Xet traffic), ``shouldIgnore: false``
- ``POST /api/models/{repo}/commit/{rev}``        -> ndjson lines ``header`` / ``file`` (base64) / ``deletedFile``

Everything that arrives is stored on the server object (``repos``, ``requests``, ``yaml_checked``). Tests can make
any route answer an error (``fail={"create": 401}``), stall (``delay={"whoami": 2.0}``) or hang: accept the
request and never answer until the server stops (``hang={"preupload"}``). ``fail_times={"create": 2}`` makes the
``fail`` answer only the first n calls of a route (then it answers normally: a transient 429/5xx). Route names:
whoami, create, repo_info, validate_yaml, preupload, commit.

The server keeps only whether a request was authorised, never the token itself.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

TEST_TOKEN = "hf_" + __import__("uuid").uuid4().hex
"""The token of the shared `hub` fixture (tests/conftest.py): unique per session, so a grep for it in written files
can't match anything else."""

_REPO = r"(?P<repo>[^/]+/[^/]+)"
ROUTES = [
    ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
    ("POST", re.compile(r"^/api/repos/create$"), "create"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    ("GET", re.compile(rf"^/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?$"), "repo_info"),
]

_MESSAGES = {401: "Invalid credentials in Authorization header", 403: "You don't have the rights to do this",
             404: "Repository not found", 500: "Internal Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class Repo:
    repo_id: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Request:
    method: str
    path: str
    route: str | None
    authorised: bool
    status: int = 0


class HubServer:
    """``with HubServer(token="hf_x") as hub: ...``; ``hub.url`` is the endpoint to give the client."""

    def __init__(self, token: str = "hf_test_token", user: str = "tester", orgs: tuple[str, ...] = ("studio-org",),
                 fail: dict[str, int] | None = None, delay: dict[str, float] | None = None,
                 hang: set[str] | None = None, fail_times: dict[str, int] | None = None):
        self.token = token  # only compared, never stored with a request
        self.user = user
        self.orgs = list(orgs)
        self.fail: dict[str, int] = dict(fail or {})
        self.delay: dict[str, float] = dict(delay or {})
        self.hang: set[str] = set(hang or ())
        self.fail_times: dict[str, int] = dict(fail_times or {})
        self._stopping = threading.Event()
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.yaml_checked: list[str] = []
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> "HubServer":
        server = self

        class Handler(_Handler):
            hub = server

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hung requests
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- helpers for tests -------------------------------------------------------------------------------------
    def routes_called(self) -> list[str]:
        return [r.route or f"{r.method} {r.path}" for r in self.requests]

    def repo(self, repo_id: str) -> Repo:
        return self.repos[repo_id]


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (a timeout test) leaves a broken pipe behind: not worth a traceback on stderr."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        hub = self.hub
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        route, match = None, None
        for m, pattern, name in ROUTES:
            found = pattern.match(path)
            if m == method and found:
                route, match = name, found
                break
        authorised = self.headers.get("Authorization") == f"Bearer {hub.token}"
        record = Request(method, path, route, authorised)
        with hub.lock:
            hub.requests.append(record)
        if route in hub.delay:
            time.sleep(hub.delay[route])
        if route in hub.hang:
            hub._stopping.wait()  # accepted, never answered
            self.close_connection = True
            return
        if route in hub.fail and route in hub.fail_times:
            with hub.lock:
                left = hub.fail_times[route] = hub.fail_times[route] - 1
            if left < 0:
                hub.fail.pop(route, None)
        if route in hub.fail:
            status = hub.fail[route]
            record.status = status
            return self._send(status, {"error": _MESSAGES.get(status, "error")},
                              {"X-Error-Message": _MESSAGES.get(status, "error")})
        if route is None:
            record.status = 404
            return self._send(404, {"error": f"no route {method} {path}"})
        if not authorised and route != "validate_yaml":
            record.status = 401
            return self._send(401, {"error": "Invalid username or password."},
                              {"X-Error-Message": _MESSAGES[401]})
        status, payload, headers = getattr(self, f"_{route}")(match, body)
        record.status = status
        self._send(status, payload, headers)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _known_repo(self, match: re.Match) -> Repo | None:
        return self.hub.repos.get(match["repo"])

    def _not_found(self) -> tuple[int, Any, dict[str, str]]:
        return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound",
                                                        "X-Error-Message": "Repository not found"}

    # -- routes --------------------------------------------------------------------------------------------------
    def _whoami(self, match: re.Match, body: bytes) -> tuple[int, Any, dict[str, str]]:
        hub = self.hub
        return 200, {
            "type": "user", "id": "0" * 24, "name": hub.user, "fullname": hub.user.title(),
            "orgs": [{"type": "org", "name": org} for org in hub.orgs],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
        }, {}

    def _create(self, match: re.Match, body: bytes) -> tuple[int, Any, dict[str, str]]:
        hub = self.hub
        data = json.loads(body or b"{}")
        if data.get("type") not in (None, "model"):
            return 400, {"error": "only model repos here"}, {}
        owner = data.get("organization") or hub.user
        if owner != hub.user and owner not in hub.orgs:
            return 403, {"error": f"You don't have the rights to create a model under the namespace {owner}"}, {
                "X-Error-Message": _MESSAGES[403]}
        repo_id = f"{owner}/{data['name']}"
        url = f"{self.hub.url}/{repo_id}"
        with hub.lock:
            if repo_id in hub.repos:
                return 409, {"error": "You already created this model repo", "url": url}, {}
            hub.repos[repo_id] = Repo(repo_id, private=data.get("visibility") == "private")
        return 200, {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]}, {}

    def _repo_info(self, match: re.Match, body: bytes) -> tuple[int, Any, dict[str, str]]:
        repo = self._known_repo(match)
        if repo is None:
            return self._not_found()
        sha = repo.commits[-1]["oid"] if repo.commits else "0" * 40
        return 200, {"id": repo.repo_id, "modelId": repo.repo_id, "sha": sha, "private": repo.private,
                     "siblings": [{"rfilename": p} for p in sorted(repo.files)]}, {}

    def _validate_yaml(self, match: re.Match, body: bytes) -> tuple[int, Any, dict[str, str]]:
        data = json.loads(body or b"{}")
        content = data.get("content", "")
        self.hub.yaml_checked.append(content)
        front = re.match(r"^---\n(.*?)\n---\n", content, re.S)
        if not front:
            return 200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata in repo card"}]}, {}
        try:
            meta = yaml.safe_load(front.group(1))
        except yaml.YAMLError as exc:
            return 400, {"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []}, {}
        if not isinstance(meta, dict):
            return 400, {"errors": [{"message": "metadata must be a mapping"}], "warnings": []}, {}
        return 200, {"errors": [], "warnings": []}, {}

    def _preupload(self, match: re.Match, body: bytes) -> tuple[int, Any, dict[str, str]]:
        repo = self._known_repo(match)
        if repo is None:
            return self._not_found()
        files = json.loads(body or b"{}").get("files", [])
        return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                               for f in files]}, {}

    def _commit(self, match: re.Match, body: bytes) -> tuple[int, Any, dict[str, str]]:
        repo = self._known_repo(match)
        if repo is None:
            return self._not_found()
        header: dict[str, Any] = {}
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding") != "base64":
                    return 400, {"error": "file content must be base64"}, {}
                added[value["path"]] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"])
            else:
                return 400, {"error": f"unsupported commit item {key!r} (this server takes regular files only)"}, {}
        if not header.get("summary"):
            return 400, {"error": "commit summary is empty"}, {}
        oid = hashlib.sha1(body).hexdigest()
        with self.hub.lock:
            for path in deleted:
                repo.files.pop(path, None)
            repo.files.update(added)
            repo.commits.append({"oid": oid, "summary": header["summary"],
                                 "description": header.get("description", ""), "files": sorted(added)})
        return 200, {"success": True, "commitOid": oid, "commitUrl": f"{self.hub.url}/{repo.repo_id}/commit/{oid}",
                     "pullRequestUrl": None}, {}
