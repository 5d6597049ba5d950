"""The local receiver, able to answer like an unhealthy Sentry endpoint.

Tests set ``receiver.fault`` and the next POSTs that pass the receiver's path and key checks
hang, or get an error status, until it is set back to ``None``. The ``receiver`` fixture in
``conftest.py`` is one of these.

Example::

    with FaultyReceiver() as receiver:
        receiver.fault = Fault(status=429, retry_after="30")
        ...
        receiver.fault = None
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sentry_llm_callbacks.devtools.receiver import LocalReceiver, Reply


@dataclass
class Fault:
    """How the receiver misbehaves: ``hang`` seconds before answering, then (if given) an HTTP
    error ``status`` with a ``Retry-After`` header and a JSON ``body``, as an error answer would carry."""

    status: int | None = None
    retry_after: str | None = None
    hang: float = 0.0
    body: str | None = None


class FaultyReceiver(LocalReceiver):
    """A :class:`LocalReceiver` that applies ``self.fault`` to the requests it would accept."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fault: Fault | None = None

    def respond(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        fault = self.fault
        if fault is None:
            return super().respond(body, headers)
        if fault.hang:
            time.sleep(fault.hang)  # a hanging endpoint is the fault under test
        if fault.status is None:
            return super().respond(body, headers)
        extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        if fault.body is not None:
            return Reply(fault.status, {"Content-Type": "application/json", **extra}, fault.body.encode())
        return Reply(fault.status, extra, b"")
