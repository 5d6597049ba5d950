"""Talking to an OTLP/HTTP endpoint: sending request bodies and deciding when to try again.

* :class:`OtlpHttpSender` encodes finished spans as OTLP protobuf in pieces under
  :data:`~sentry_llm_callbacks.config.settings.MAX_REQUEST_BYTES` and POSTs request bodies, classifying
  the answer (:func:`classify_status`) as delivered, retryable (429, 5xx, network) or rejected.
* :class:`Backoff` decides when to try again: exponential backoff honouring ``Retry-After``,
  and a circuit breaker that stops trying for a while after repeated failures.

Neither knows about queues, spans' content or the recorder: the export pipeline drives them.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan

from sentry_llm_callbacks.base.randomness import uniform
from sentry_llm_callbacks.config.settings import MAX_REQUEST_BYTES
from sentry_llm_callbacks.core.content import RenderCache
from sentry_llm_callbacks.export.compression import GZIP, Compression
from sentry_llm_callbacks.export.otlp import encode_request

if TYPE_CHECKING:
    import requests


@dataclass(frozen=True, slots=True)
class SendResult:
    delivered: bool
    retryable: bool
    status_code: int | None = None
    retry_after: float | None = None
    #: Why it failed: the HTTP reason (and what the server said, for a rejection), or what went
    #: wrong on the way (:func:`network_problem`).
    detail: str = ""
    #: What a server that rejected the request said about it (:func:`server_text`).
    said: str = ""


def network_problem(exc: Exception, timeout: float) -> str:
    """What went wrong on the way to an endpoint, in words a person can act on.

    >>> import requests
    >>> network_problem(requests.exceptions.ReadTimeout(), 5.0)
    'no answer within 5 s'
    """
    import requests

    text = repr(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return "the TLS handshake failed (certificate or proxy problem)"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"the connection timed out after {timeout:g} s"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer within {timeout:g} s"
    if "NameResolution" in text or "getaddrinfo" in text or "Name or service not known" in text:
        return "its name does not resolve (DNS)"
    if "refused" in text.lower():
        return "the connection was refused"
    return f"a network error ({type(exc).__name__})"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None


@dataclass(frozen=True, slots=True)
class StatusClass:
    """What an HTTP status from an OTLP endpoint means, for the exporter and for ``test_connection``."""

    delivered: bool
    retryable: bool
    #: What ``test_connection`` reports: ``ok``, ``unauthorized`` (401/403), ``not_found`` (404),
    #: ``rate_limited`` (429), ``server_error`` (5xx) or ``invalid_config`` (any other answer);
    #: ``unreachable`` is the one reason with no status.
    reason: str


def classify_status(status: int) -> StatusClass:
    """Any 2xx is success; 429 and 5xx are retried; anything else is rejected.

    >>> classify_status(503)
    StatusClass(delivered=False, retryable=True, reason='server_error')
    """
    if 200 <= status < 300:
        return StatusClass(True, False, "ok")
    if status == 429:
        return StatusClass(False, True, "rate_limited")
    if status >= 500:
        return StatusClass(False, True, "server_error")
    if status in (401, 403):
        return StatusClass(False, False, "unauthorized")
    if status == 404:
        return StatusClass(False, False, "not_found")
    return StatusClass(False, False, "invalid_config")


#: How much of an error response's body is kept for a log line or a message.
SERVER_TEXT_CHARS = 200


def server_text(body: bytes, content_type: str, secrets: Sequence[str] = ()) -> str:
    """What an error response says, in one short line: a JSON body's ``detail``/``message``/
    ``error``, else its text; cut to :data:`SERVER_TEXT_CHARS`, with ``secrets`` masked.

    >>> server_text(b'{"detail": "invalid span"}', "application/json")
    'invalid span'
    """
    text = body[: SERVER_TEXT_CHARS * 8].decode("utf-8", "replace")
    if "json" in content_type:
        try:
            data = json.loads(body)
        except ValueError:
            pass
        else:
            if isinstance(data, dict):
                for key in ("detail", "message", "error"):
                    value = data.get(key)
                    if isinstance(value, dict):
                        value = value.get("message", value)
                    if value:
                        text = value if isinstance(value, str) else json.dumps(value)
                        break
    if "html" in content_type:
        return ""  # a proxy's error page says nothing useful in one line
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= SERVER_TEXT_CHARS else text[: SERVER_TEXT_CHARS - 1] + "\u2026"


class OtlpHttpSender:
    """Encodes spans as OTLP/HTTP protobuf (with :mod:`.otlp`) and POSTs request bodies made
    with ``compression`` (gzip unless the environment asks otherwise).

    Encoding happens in small chunks, releasing the interpreter lock between them, so that
    the application's threads are not held up behind a large batch. Chunks are concatenated:
    concatenated protobuf messages of one type merge into one message.
    """

    CHUNK = 32

    def __init__(
        self,
        endpoint: str,
        headers: dict[str, str],
        *,
        timeout: float,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        compression: Compression = GZIP,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.compression = compression
        encoding = compression.content_encoding
        self._headers = {**headers, "Content-Encoding": encoding} if encoding else dict(headers)
        self._timeout = timeout
        self._verify = verify
        self._cert = cert
        self._max_request_bytes = max_request_bytes
        #: Header values a server might echo back, masked in what we log from its answers.
        self._secrets = tuple(v for k, v in headers.items() if k.lower() not in ("content-type",))
        self._session: requests.Session | None = None
        self._template: tuple[requests.PreparedRequest, dict[str, Any]] | None = None

    @property
    def max_request_bytes(self) -> int:
        return self._max_request_bytes

    def warm_up(self) -> None:
        """Import the HTTP client, create the session and prepare the request now (a failure is
        left for ``post`` to report)."""
        with contextlib.suppress(Exception):
            self._request_template()

    def _request_template(self) -> tuple[requests.PreparedRequest, dict[str, Any]]:
        """The request, prepared once with the settings ``requests`` would otherwise look up again
        for every request (``.netrc``, proxy environment): file system calls that each give the
        interpreter lock away, which the export thread may wait long to get back under load."""
        if self._template is None:
            import requests

            session = self._get_session()
            prepared = session.prepare_request(requests.Request("POST", self.endpoint, headers=self._headers))
            settings = session.merge_environment_settings(self.endpoint, {}, None, self._verify, self._cert)
            self._template = (prepared, settings)
        return self._template

    def _get_session(self) -> requests.Session:
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def encode(
        self,
        spans: Sequence[ReadableSpan],
        cache: RenderCache | None = None,
        pause: Callable[[], None] | None = None,
    ) -> tuple[list[tuple[bytes, int]], int]:
        """Request pieces (uncompressed, each a whole request under the size limit) with the number
        of spans in each, and the number of spans left out for being over the limit alone.
        Concatenated pieces are one valid request. Lazily captured content is rendered through
        ``cache`` (one per batch); ``pause`` is called every few spans (see ``encode_request``)."""
        pieces: list[tuple[bytes, int]] = []
        oversize = 0
        cache = RenderCache() if cache is None else cache
        for i in range(0, len(spans), self.CHUNK):
            if i and pause is not None:
                pause()
            oversize += self._encode_chunk(spans[i : i + self.CHUNK], pieces, cache, pause)
        return pieces, oversize

    def _encode_chunk(
        self,
        chunk: Sequence[ReadableSpan],
        out: list[tuple[bytes, int]],
        cache: RenderCache,
        pause: Callable[[], None] | None,
    ) -> int:
        data = encode_request(chunk, cache, pause)
        if len(data) <= self.max_request_bytes:
            out.append((data, len(chunk)))
            return 0
        if len(chunk) == 1:
            return 1
        mid = len(chunk) // 2
        return self._encode_chunk(chunk[:mid], out, cache, pause) + self._encode_chunk(chunk[mid:], out, cache, pause)

    def post(self, data: bytes, *, timeout: float | None = None) -> SendResult:
        """POST one request body and classify the answer. Never raises: a request that cannot be
        built (a header value the HTTP library refuses, say) is a rejection, with its reason."""
        import requests

        try:
            template, settings = self._request_template()
            prepared = template.copy()
            prepared.prepare_body(data, None)
            response = self._get_session().send(prepared, timeout=timeout or self._timeout, **settings)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL) as exc:
            return SendResult(False, False, None, None, type(exc).__name__)  # the same on every retry
        except requests.RequestException as exc:
            return SendResult(False, True, None, None, network_problem(exc, timeout or self._timeout))
        except Exception as exc:
            return SendResult(False, False, None, None, type(exc).__name__)
        said = ""
        try:
            status = classify_status(response.status_code)
            retry_after = parse_retry_after(response.headers.get("Retry-After")) if status.retryable else None
            detail = response.reason or ""
            if not status.delivered and not status.retryable:
                said = server_text(response.content, response.headers.get("Content-Type", ""), self._secrets)
                detail = f"{detail}: {said}" if said else detail
        finally:
            response.close()
        return SendResult(status.delivered, status.retryable, response.status_code, retry_after, detail, said)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


class Backoff:
    """Exponential backoff with jitter, honouring ``Retry-After``, plus a circuit breaker.

    After ``breaker_threshold`` consecutive failures the breaker opens: nothing is sent for
    ``breaker_cooldown`` seconds, then a single request probes the endpoint.
    """

    def __init__(
        self,
        *,
        base: float = 0.5,
        maximum: float = 30.0,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 60.0,
        max_retry_after: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float, float], float] = uniform,
    ) -> None:
        self._clock = clock
        self._jitter = jitter
        self.base = base
        self.maximum = maximum
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown
        self.max_retry_after = max_retry_after
        self.failures = 0
        self.next_attempt = 0.0

    @property
    def breaker_open(self) -> bool:
        return self.failures >= self.breaker_threshold and self._clock() < self.next_attempt

    def ready(self, now: float | None = None) -> bool:
        return (now if now is not None else self._clock()) >= self.next_attempt

    def success(self) -> None:
        self.failures = 0
        self.next_attempt = 0.0

    def failure(self, retry_after: float | None = None) -> float:
        """Record a failure; returns the delay before the next attempt."""
        self.failures += 1
        if retry_after is not None:
            delay = min(retry_after, self.max_retry_after)
        else:
            delay = min(self.maximum, self.base * 2 ** (self.failures - 1)) * self._jitter(0.8, 1.2)
        if self.failures >= self.breaker_threshold:
            delay = max(delay, self.breaker_cooldown)
        self.next_attempt = self._clock() + delay
        return delay
