"""The package's command line, run as a user runs it: ``python -m sentry_llm_callbacks``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.environment import REPO_ROOT


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sentry_llm_callbacks", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=REPO_ROOT,
    )


def words(text: str) -> str:
    """``text`` with its line breaks and runs of spaces as single spaces (the demo wraps its sentences)."""
    return " ".join(text.split())


def hiding(folder: Path, *packages: str) -> dict[str, str]:
    """Environment variables for :func:`cli` under which importing each of ``packages`` fails with
    ``ImportError``, as a missing or broken install does: a stub package of that name, first on
    ``PYTHONPATH`` in ``folder``, raises it (the real package stays installed, but unreachable).

    Example::

        result = cli("demo", env=hiding(tmp_path, "langgraph"))
    """
    for package in packages:
        stub = folder / package
        stub.mkdir(parents=True, exist_ok=True)
        (stub / "__init__.py").write_text(f"raise ImportError('{package} is hidden by the test')\n")
    path = [str(folder), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in path if p)}
