"""Push an export to the Hugging Face Hub, and everything about the token.

The token is resolved from (in order) a value the UI holds in memory, ``HF_TOKEN``, or the stored
``hf auth login``; it is passed to ``HfApi`` in memory and never written anywhere by Studio: not to the export,
the card, the run directory, events, logs or error messages. ``HF_ENDPOINT`` (a private Hub mirror) is read at call
time. Every failure becomes a :class:`HubError` with one sentence saying what to do; the local export is kept, so
a push can be retried.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import HubError, hub_unreachable
from studio.formatting import format_bytes, plural

IGNORE = (".studio-export.json", ".ipynb_checkpoints/*", "*/.ipynb_checkpoints/*")
"""Never uploaded, on top of huggingface_hub's own ``DEFAULT_IGNORE_PATTERNS`` (.git, .cache/huggingface)."""
Progress = Callable[[float, str], None]


# ------------------------------------------------------------------------------------------------- token
@dataclass(frozen=True)
class Token:
    """A resolved token and where it came from. ``repr``/``str`` never show the secret."""

    value: str = field(repr=False)
    source: str

    def __str__(self) -> str:
        return f"token from {self.source}"


def resolve_token(explicit: str | Token | None = None) -> Token | None:
    """The token to use: ``explicit`` (typed into the UI, kept in memory), ``HF_TOKEN``, or the stored login.

    Returns None when there is none; nothing is read from or written to disk except huggingface_hub's own
    stored-login file (read only).
    """
    if isinstance(explicit, Token):
        return explicit
    if explicit and explicit.strip():
        return Token(explicit.strip(), "the value entered in the app (kept in memory only)")
    env = (os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or "").strip()
    if env:
        return Token(env, "the HF_TOKEN environment variable")
    try:
        from huggingface_hub import get_token

        stored = get_token()
    except Exception:  # noqa: BLE001 - an unreadable login file is the same as none
        stored = None
    if stored:
        return Token(stored, "the stored Hugging Face login (hf auth login)")
    return None


NO_TOKEN = ("No Hugging Face token found: set HF_TOKEN, run `hf auth login`, or paste a token with write access in "
            "the Publish tab (create one at https://huggingface.co/settings/tokens)")


def _require_token(token: str | Token | None) -> Token:
    resolved = resolve_token(token)
    if resolved is None:
        raise HubError(NO_TOKEN)
    return resolved


def hub_endpoint(endpoint: str | None = None) -> str:
    """``endpoint``, else ``HF_ENDPOINT`` read now (not at import), else https://huggingface.co."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


# ------------------------------------------------------------------------------------------------- errors
def _timeout_errors() -> tuple[type, ...]:
    """Timeout classes of the HTTP client huggingface_hub uses (httpx2 in 2.x, httpx in 1.x)."""
    import importlib

    found: list[type] = [TimeoutError]
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).TimeoutException)
        except ImportError:
            continue
    return tuple(found)


def explain(exc: BaseException, *, endpoint: str, repo_id: str | None = None, kept: Path | None = None,
            timeout: float | None = None) -> HubError:
    """One sentence with the fix for a failed Hub call (never containing the token)."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    repo = f" {repo_id}" if repo_id else ""
    if isinstance(exc, HubError):
        message = str(exc)
    elif isinstance(exc, OfflineModeIsEnabled):
        message = ("HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, so nothing can be sent to the Hub: unset it "
                   "and push again")
    elif isinstance(exc, LocalTokenNotFoundError):
        message = NO_TOKEN
    elif isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status == 401:
            message = (f"The Hub at {endpoint} rejected the token (401 Unauthorized): it is wrong, expired or revoked; "
                       f"create a new token with write access at {endpoint}/settings/tokens and set HF_TOKEN or log "
                       "in again")
        elif status == 403:
            message = (f"The token may not write to{repo} (403 Forbidden): use a token with write access (a "
                       "fine-grained token needs write permission on that namespace) or push to a namespace you own")
        elif status == 404:
            message = (f"The repo{repo} was not found (404): check the owner/name spelling and that the token's "
                       "account or organization owns it")
        elif status == 429:
            message = "The Hub is rate-limiting this account (429 Too Many Requests): wait a few minutes and push again"
        elif status >= 500:
            message = (f"The Hub at {endpoint} had a server error ({status}); nothing is wrong with your files: "
                       "wait a minute and push again")
        else:
            detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            message = f"The Hub refused the push ({status}{': ' + detail if detail else ''}); fix that and push again"
    elif _disk_full(exc):
        from studio.diskspace import full_message

        message = full_message(kept or Path("."), "the export")
    elif isinstance(exc, _timeout_errors()):
        wait = f" within {timeout:g} s" if timeout else ""
        message = (f"The Hub at {endpoint} did not answer{wait}: check your connection or proxy (and HF_ENDPOINT), "
                   "then push again")
    elif hub_unreachable(exc) or isinstance(exc, OSError):
        message = (f"Cannot reach the Hub at {endpoint}: there is no network connection or the address is wrong; "
                   "check your connection, proxy settings and HF_ENDPOINT, then push again"
                   + ("" if kept else " (`studio push --export-only DIR` exports without a network)"))
    elif isinstance(exc, ValueError) and "metadata" in str(exc).lower():
        detail = " ".join(str(exc).split())[:200]
        message = f"The Hub rejected the model card's YAML header ({detail}); edit the card and push again"
    else:
        message = f"The push failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"
    if kept is not None:
        message = message.rstrip(".") + f". The export is kept in {kept}, so a retry only uploads."
    return HubError(message)


def _disk_full(exc: BaseException) -> bool:
    from studio.diskspace import is_disk_full

    return isinstance(exc, OSError) and is_disk_full(exc)


# ------------------------------------------------------------------------------------------------- whoami
@dataclass
class HubAccount:
    """Who a token belongs to."""

    name: str
    fullname: str = ""
    orgs: list[str] = field(default_factory=list)
    role: str | None = None
    """The token's role (read / write / fineGrained) when the Hub says."""
    endpoint: str = "https://huggingface.co"
    source: str = ""

    def describe(self) -> str:
        orgs = f" (organizations: {', '.join(self.orgs)})" if self.orgs else ""
        role = f", {self.role} token" if self.role else ""
        src = f", {self.source}" if self.source else ""
        return f"Logged in as {self.name}{orgs}{role}{src}"


def whoami(token: str | Token | None = None, *, endpoint: str | None = None) -> HubAccount:
    """Ask the Hub who ``token`` (or the resolved token) belongs to (``HfApi.whoami``, within STUDIO_HUB_TIMEOUT).

    Raises:
        HubError: no token, a rejected token, or the Hub can't be reached.
    """
    from huggingface_hub import HfApi

    from studio.hub import net

    tok = _require_token(token)
    url = hub_endpoint(endpoint)
    from studio.hub.deadline import deadline

    limit = net.install_timeouts()
    try:
        with deadline():
            data = net.with_backoff(lambda: HfApi(endpoint=url, token=tok.value).whoami())
    except Exception as exc:  # noqa: BLE001 - translated into one sentence
        raise explain(exc, endpoint=url, timeout=limit) from None
    access = (data.get("auth") or {}).get("accessToken") or {}
    return HubAccount(name=str(data.get("name") or "?"), fullname=str(data.get("fullname") or ""),
                      orgs=[o.get("name") for o in data.get("orgs") or [] if isinstance(o, dict) and o.get("name")],
                      role=access.get("role"), endpoint=url, source=tok.source)


# ------------------------------------------------------------------------------------------------- push
def full_repo_id(repo_id: str, account: HubAccount) -> str:
    from studio.config_values import repo_id_problem

    repo_id = repo_id.strip().strip("/")
    if repo_id_problem(repo_id):
        raise HubError(f"repo id must look like 'name' or 'owner/name', got {repo_id!r}")
    return repo_id if "/" in repo_id else f"{account.name}/{repo_id}"


def upload_folder(folder: str | Path, repo_id: str, token: str | Token | None, *, private: bool = True,
                  commit_message: str | None = None, endpoint: str | None = None,
                  progress: Progress | None = None, account: HubAccount | None = None) -> str:
    """Create ``repo_id`` (exist_ok) and upload ``folder`` (less :data:`IGNORE`) with ``HfApi.upload_folder``;
    returns the repo URL.

    Raises:
        HubError: with the fix, and saying the folder is kept.
    """
    from studio.hub import net
    from studio.hub.deadline import deadline

    progress = progress or (lambda f, m: None)
    folder = Path(folder)
    tok = _require_token(token)
    url = hub_endpoint(endpoint)
    limit = net.install_timeouts()
    with deadline() as total:
        return _upload(folder, repo_id, tok, private, commit_message, url, progress, account, limit, total)


def _upload(folder: Path, repo_id: str, tok: Token, private: bool, commit_message: str | None, url: str,
            progress: Progress, account: HubAccount | None, limit: float, total: float) -> str:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfUriError
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, disable_progress_bars, filter_repo_objects

    from studio.hub import net
    from studio.hub.deadline import DeadlineExceeded

    account = account or whoami(tok, endpoint=url)
    repo_id = full_repo_id(repo_id, account)
    api = HfApi(endpoint=url, token=tok.value, library_name="fine-tune-studio")
    names = list(filter_repo_objects(sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()),
                                     ignore_patterns=[*IGNORE, *DEFAULT_IGNORE_PATTERNS]))
    try:
        progress(0.0, f"creating {repo_id} ({'private' if private else 'public'}) if it does not exist")
        try:
            repo_url = net.with_backoff(lambda: api.create_repo(repo_id, private=private, exist_ok=True,
                                                                repo_type="model"))
            repo_id = getattr(repo_url, "repo_id", None) or repo_id
        except HfUriError:
            # The repo exists (create answered 401/403, repo_info found it) and huggingface_hub then builds its URL
            # against the endpoint it read at import time, which fails for an endpoint passed in later.
            pass
        size = sum((folder / name).stat().st_size for name in names)
        progress(0.05, f"uploading {plural(len(names), 'file')} ({format_bytes(size)})")
        with disable_progress_bars():  # its live display would redraw over our progress lines
            api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model", ignore_patterns=list(IGNORE),
                              commit_message=commit_message or "Upload fine-tuned model with Fine-Tune Studio")
    except HubError:
        raise
    except Exception as exc:  # noqa: BLE001 - translated into one sentence
        timeout = total if isinstance(exc, DeadlineExceeded) else limit
        raise explain(exc, endpoint=url, repo_id=repo_id, kept=folder, timeout=timeout) from None
    link = f"{url}/{repo_id}"
    progress(1.0, f"pushed to {link}")
    return link


def push(run_dir: str | Path, repo_id: str, token: str | Token | None = None, private: bool = True,
         merged: bool = False, card: str | None = None, progress: Progress | None = None, *,
         endpoint: str | None = None, export_dir: str | Path | None = None, commit_message: str | None = None,
         max_shard_size: str | int = "2GB", dtype: str = "auto", device: str = "auto",
         gguf: str | None = None, keep_merged: bool = True) -> str:
    """Export a run (adapter or merged) and upload it to ``repo_id``; returns the repo URL.

    The token is checked first (``whoami``) so a bad token fails before any merge. The export lands in
    ``export_dir`` (default ``RUN/export/<adapter|merged>``) and stays there if the upload fails; a retry reuses the
    merged weights when the adapter has not changed.

    Args:
        run_dir: the run directory.
        repo_id: ``name`` (under the token's account) or ``owner/name``.
        token: a token string (kept in memory), a :class:`Token`, or None for HF_TOKEN / the stored login.
        private: create the repo private (ignored when it already exists).
        merged: publish a merged 16-bit model instead of the adapter.
        card: README.md text (edited in the UI); rendered from the run when None.
        progress: ``callback(fraction, message)``.
        endpoint: Hub URL; default ``HF_ENDPOINT`` or https://huggingface.co.
        gguf: publish a checked GGUF of this outtype (f16, bf16, q8_0) with its Modelfile instead; an export that
            fails its parity check is never uploaded.
        keep_merged: with ``gguf``, keep the intermediate merged model (see :func:`export_gguf`).

    Raises:
        HubError: one sentence with the fix.
    """
    from studio.hub.exporting import default_export_dir, export
    from studio.hub.gguf_export import export_gguf

    from studio.hub.exporting import phased

    progress = progress or (lambda f, m: None)
    pushing = phased(progress, "push")
    tok = _require_token(token)
    url = hub_endpoint(endpoint)
    pushing(0.0, f"checking the token with {url}")
    account = whoami(tok, endpoint=url)
    pushing(0.01, account.describe())
    full_id = full_repo_id(repo_id, account)
    if gguf:
        res = export_gguf(run_dir, export_dir, gguf, repo_id=full_id, card=card, device=device,
                          keep_merged=keep_merged, progress=lambda f, m: progress(0.02 + 0.48 * f, m))
        if not res.passed:
            raise HubError(f"{res.check.summary()}: this GGUF is not pushed; the export is kept in {res.path} for a "
                           "look, and the merged model or the adapter can be published instead")
        return upload_folder(res.path, full_id, tok, private=private, endpoint=url, account=account,
                             commit_message=commit_message or f"Upload GGUF {gguf} from run {Path(run_dir).name} "
                                                              "(Fine-Tune Studio)",
                             progress=lambda f, m: pushing(0.5 + 0.5 * f, m))
    out = Path(export_dir) if export_dir is not None else default_export_dir(run_dir, merged)
    result = export(run_dir, out, merged=merged, card=card, repo_id=full_id, max_shard_size=max_shard_size,
                    dtype=dtype, device=device, reuse=True,
                    progress=lambda f, m: progress(0.02 + 0.48 * f, m))
    for note in result.notes:
        progress(0.5, f"note: {note}")
    return upload_folder(result.path, full_id, tok, private=private, endpoint=url, account=account,
                         commit_message=commit_message or _commit_message(merged, run_dir),
                         progress=lambda f, m: pushing(0.5 + 0.5 * f, m))


def _commit_message(merged: bool, run_dir: str | Path) -> str:
    return f"Upload {'merged model' if merged else 'LoRA adapter'} from run {Path(run_dir).name} (Fine-Tune Studio)"


def describe_error(exc: BaseException, **kwargs: Any) -> str:
    """The one-sentence explanation of ``exc`` (for UIs that catch broadly)."""
    return str(explain(exc, endpoint=hub_endpoint(kwargs.pop("endpoint", None)), **kwargs))
