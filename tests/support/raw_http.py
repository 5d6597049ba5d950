"""HTTP requests written byte by byte, as a broken or hostile client sends them: a header no
HTTP library would let through (a negative ``Content-Length``, two of them), a body that stops
early. The answer is read with ``http.client``'s own parser.

Example::

    answer = raw_post(receiver.port, ["Content-Length: -1"])
    assert answer.status == 400 and "Content-Length" in answer.detail
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RawAnswer:
    status: int
    #: Header names in lower case.
    headers: dict[str, str]
    body: bytes

    @property
    def detail(self) -> str:
        """The reason of an error answer (``{"detail": ...}``, as Sentry words its errors)."""
        return str(json.loads(self.body)["detail"])


def raw_post(
    port: int,
    header_lines: Sequence[str],
    body: bytes = b"",
    *,
    path: str = "/v1/traces",
    stop_sending: bool = False,
    timeout: float = 10.0,
) -> RawAnswer:
    """POST ``body`` with exactly ``header_lines`` (besides ``Host``) and read the answer.
    ``stop_sending``: shut the sending side after the body (a client that sent less than it
    announced and is done). Raises ``http.client.RemoteDisconnected`` if no answer comes."""
    head = "".join(f"{line}\r\n" for line in [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *header_lines])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        if stop_sending:
            sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return RawAnswer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
