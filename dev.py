#!/usr/bin/env python3
"""Development entry point that needs only Python 3.11+ and git.

python3 dev.py run     # create .venv, install fengkong, serve on 127.0.0.1:8000 (SQLite, default policy)
python3 dev.py test    # create .venv, install fengkong with test tools, run ruff, mypy and pytest
python3 dev.py lint    # ruff and mypy only
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".dev-installed"


def _run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True)


def ensure_env() -> None:
    """Create the virtualenv and (re)install when pyproject.toml changed since the last install."""
    if sys.version_info < (3, 11):
        sys.exit(f"fengkong needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == want:
        return
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(want)


def lint() -> None:
    _run(BIN / "ruff", "check", "src", "tests", "benchmarks", "dev.py")
    _run(BIN / "mypy")


def main(argv: list[str]) -> None:
    command = argv[0] if argv else "help"
    if command not in ("run", "test", "lint"):
        sys.exit(__doc__)
    ensure_env()
    if command == "run":
        os.execv(BIN / "fengkong", [str(BIN / "fengkong"), "serve", "--host", "127.0.0.1", "--port", "8000", *argv[1:]])
    lint()
    if command == "test":
        _run(BIN / "python", "-m", "pytest", "-q", *argv[1:])


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
