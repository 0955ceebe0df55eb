"""Launch Fine-Tune Studio in the browser: the same as ``studio app`` (see :mod:`studio.commands.app`).

    python launch.py                      # http://127.0.0.1:7860, the real SmolLM2 (offline) + bundled word problems
    python launch.py --demo               # the tiny random demo model instead (seconds per run)
    python launch.py --share              # temporary public link, always behind a password
    python launch.py --auth me:secret     # or STUDIO_AUTH=me:secret
"""
from __future__ import annotations

import sys

from studio.commands.app import (AUTH_ENV, DEFAULT_CONCURRENCY, parse_auth, resolve_auth,  # noqa: F401
                                 serve_until_signal, want_demo)
from studio.commands import app as _app


def build_parser():
    return _app.build_parser("launch.py")


def main(argv: list[str] | None = None) -> int:
    return _app.main(argv, prog="launch.py")


if __name__ == "__main__":
    sys.exit(main())
