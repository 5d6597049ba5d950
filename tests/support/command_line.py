"""The package's command line, run as a user runs it: ``python -m sentry_llm_callbacks``."""

from __future__ import annotations

import os
import subprocess
import sys

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
