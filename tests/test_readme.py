"""The README's two set-up commands are the ones CI runs (scripts/readme_commands.sh prints them)."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def command(which: str) -> str:
    return subprocess.run(["bash", str(ROOT / "scripts/readme_commands.sh"), which], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_readme_shows_the_two_commands_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    launch, test = command("launch"), command("test")
    assert f"```bash\n{launch}\n```" in readme
    assert f"```bash\n{test}\n```" in readme
    assert readme.index(launch) < readme.index("## The CLI")  # at the top
    assert "scripts/readme_commands.sh test" in (ROOT / ".ci/run").read_text()
    assert "torch==2.13.0" in test and "pytest" in test and "launch.py" in launch
