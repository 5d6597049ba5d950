"""Headless Chromium, as the browser tests drive it: one process per page, no network of its own.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it when missing); where it
cannot be installed the tests that need it are skipped with the reason (``needs_chromium``).
Screenshots go to ``artifacts/`` at the repository's root, which CI keeps.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.environment import REPO_ROOT

ARTIFACTS = REPO_ROOT / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

SKIP_REASON = "Chromium is not installed (apt-get install -y chromium; .ci/run does it when it can)"
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)

#: The id of the element :func:`measure` reads the page script's JSON from.
RESULT_ID = "slc-measured"


#: The switches every run uses: headless, no sandbox (CI runs as root), nothing fetched by Chromium itself.
SWITCHES = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium with no network of its own beyond the page, and return its stdout."""
    command = [str(CHROMIUM), *SWITCHES, f"--user-data-dir={tmp_path / 'profile'}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def measure(tmp_path: Path, page: Path, *, window: str = "1280,900") -> Any:
    """Load ``page`` (which runs a script that leaves its JSON in ``<script id="slc-measured">``)
    and return that JSON: what the browser laid out, not what the HTML says."""
    dom = chromium(tmp_path, "--dump-dom", f"--window-size={window}", page.as_uri())
    found = re.search(rf'<script type="application/json" id="{RESULT_ID}">(.*?)</script>', dom, flags=re.S)
    assert found, f"the page's script left no result in #{RESULT_ID}: {dom[-1500:]}"
    return json.loads(found.group(1))


def screenshot(tmp_path: Path, page: str, name: str, *, window: str = "1280,900") -> Path:
    """``page`` (a URL) drawn into ``artifacts/<name>``; fails on a blank drawing."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    chromium(tmp_path, f"--screenshot={shot}", f"--window-size={window}", page)
    assert shot.stat().st_size > 10_000  # a drawn page, not a blank one
    return shot
