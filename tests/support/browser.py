"""Headless Chromium, driven as a person would use a page: navigate, click where an element is
drawn, type, read the DOM and its measured geometry, take screenshots.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it when missing); the
tests that need it skip with the reason when it is absent. It is driven over the DevTools
protocol (a WebSocket, with the ``websockets`` package) with no network of its own beyond the
pages it is sent to.

Example::

    with Browser(tmp_path) as browser:
        browser.open("http://127.0.0.1:4318/")
        browser.click("tr.slc-row")
        assert browser.evaluate("document.title") == "..."
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.support import chromium
from tests.support.chromium import CHROMIUM, SKIP_REASON
from tests.support.waiting import wait_until

#: The switches every run uses, and scrollbars hidden (they would change what is measured).
SWITCHES = (*chromium.SWITCHES, "--hide-scrollbars")


class BrowserError(AssertionError):
    """The page threw, or Chromium answered a command with an error."""


class Browser:
    """One headless Chromium with one tab, ``width`` x ``height`` CSS pixels."""

    def __init__(self, profile: Path, *, width: int = 1280, height: int = 900) -> None:
        assert CHROMIUM is not None, SKIP_REASON
        self.profile = profile
        self.width, self.height = width, height
        self._ids = itertools.count(1)
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: ClientConnection | None = None
        self._stack = contextlib.ExitStack()
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        self.profile.mkdir(parents=True, exist_ok=True)
        port_file = self.profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        command = [str(CHROMIUM), *SWITCHES, "--remote-debugging-port=0", f"--user-data-dir={self.profile}"]
        self._process = subprocess.Popen(
            [*command, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert wait_until(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1, timeout=30)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.loads(response.read())
        page = next(t for t in targets if t["type"] == "page")
        self._socket = self._stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10))
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.resize(self.width, self.height)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)

    # -- the protocol --------------------------------------------------------------------

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command and its result; events that arrive meanwhile are kept in ``events``."""
        assert self._socket is not None
        ident = next(self._ids)
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=60))
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def _wait_for_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        assert self._socket is not None
        for index, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(index)
        while True:
            message = json.loads(self._socket.recv(timeout=timeout))
            if message.get("method") == method:
                return message
            self.events.append(message)

    # -- what a person does --------------------------------------------------------------

    def resize(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def open(self, url: str) -> None:
        """Navigate and wait for the page's load event (its scripts have run). A URL differing
        from the page's only in its ``#fragment`` loads nothing: open another page first."""
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        result = self.send("Page.navigate", url=url)
        assert "errorText" not in result, result
        self._wait_for_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(json.dumps(result["exceptionDetails"])[:2000])
        return result["result"].get("value")

    def box(self, selector: str) -> dict[str, float] | None:
        """The element's drawn box in page coordinates (``left``, ``top``, ``right``, ``bottom``,
        ``width``, ``height``); None when absent or not drawn."""
        return self.evaluate(
            f"""(() => {{
                const node = document.querySelector({json.dumps(selector)});
                if (!node) return null;
                const r = node.getBoundingClientRect();
                if (!r.width && !r.height) return null;
                return {{left: r.left + scrollX, top: r.top + scrollY, right: r.right + scrollX,
                         bottom: r.bottom + scrollY, width: r.width, height: r.height}};
            }})()"""
        )

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element, scrolled into view first: it fails
        when the element is not drawn, and lands on whatever is drawn on top of it."""
        point = self.evaluate(
            f"""(() => {{
                const node = document.querySelector({json.dumps(selector)});
                if (!node) return null;
                node.scrollIntoView({{block: "center", inline: "center"}});
                const r = node.getBoundingClientRect();
                return r.width && r.height ? [r.left + r.width / 2, r.top + r.height / 2] : null;
            }})()"""
        )
        assert point is not None, f"nothing drawn for {selector!r}"
        x, y = point
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type(self, selector: str, text: str) -> None:
        """Focus the field and type ``text`` into it (one input event, as a paste)."""
        self.click(selector)
        self.send("Input.insertText", text=text)

    def fill(self, selector: str, text: str) -> None:
        """Replace what the field holds with ``text``, typed."""
        self.click(selector)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
        if text:
            self.send("Input.insertText", text=text)
        else:
            self.key("Backspace")

    def grant_clipboard(self, origin: str) -> None:
        """Let pages of ``origin`` read and write the clipboard (a person's browser asks them)."""
        self.send(
            "Browser.grantPermissions", origin=origin, permissions=["clipboardReadWrite", "clipboardSanitizedWrite"]
        )

    def key(self, key: str) -> None:
        """Press and release a named key (``Escape``, ``ArrowDown``...)."""
        codes = {"Escape": 27, "ArrowDown": 40, "ArrowUp": 38, "Enter": 13, "Backspace": 8}
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=key, code=key, windowsVirtualKeyCode=codes[key])

    def screenshot(self, path: Path) -> None:
        """The whole page (not only the window) as a PNG."""
        width, height = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
