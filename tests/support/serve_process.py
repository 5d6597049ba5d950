"""``python -m sentry_llm_callbacks serve`` in its own process, as a user runs it: its port, what
it prints, and the peak memory it reached (Linux's ``/proc``).

Example::

    with serve_process() as serve:
        requests.post(f"http://127.0.0.1:{serve.port}/v1/traces", ...)
        serve.wait_for_output("chat test-model")
    assert "Traceback" not in serve.stderr
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.environment import REPO_ROOT
from tests.support.waiting import wait_until


class ServeProcess:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.stderr = ""  # set once the process has ended
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        assert found, f"serve did not say where it listens: {first!r}"
        self.port = int(found.group(1))
        self.lines.append(first)
        self._reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def join(self) -> None:
        """Wait for the rest of what the process printed (after it ended)."""
        self._reader.join(10)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_output(self, text: str, timeout: float = 10.0) -> bool:
        return wait_until(lambda: text in self.output, timeout=timeout)

    def peak_rss_bytes(self) -> int | None:
        """The most resident memory the process has used so far (``VmHWM``); None without ``/proc``."""
        status = Path(f"/proc/{self.process.pid}/status")
        if not status.exists():
            return None
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return None


@contextmanager
def serve_process(*args: str) -> Iterator[ServeProcess]:
    """``serve`` on a free port, stopped (and its stderr kept in ``.stderr``) on the way out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "sentry_llm_callbacks", "serve", "--port", "0", "--seconds", "300", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=env,
    )
    try:
        serve = ServeProcess(process)
        yield serve
    finally:
        process.terminate()
        process.wait(30)
    assert process.stderr is not None and process.stdout is not None
    serve.stderr = process.stderr.read()
    serve.join()
    process.stderr.close()
    process.stdout.close()
