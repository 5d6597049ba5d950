"""The transport's pure pieces, on their own: backoff and breaker on an injected clock, status
classes, Retry-After parsing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from sentry_llm_callbacks.export.transport import Backoff, classify_status, parse_retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_then_caps_and_honours_retry_after() -> None:
    clock = Clock()
    backoff = Backoff(base=0.5, maximum=4.0, breaker_threshold=100, clock=clock, jitter=lambda a, b: 1.0)
    assert [backoff.failure() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert not backoff.ready()
    clock.now += 4.0
    assert backoff.ready()
    assert backoff.failure(retry_after=7.5) == 7.5
    assert backoff.failure(retry_after=10_000) == backoff.max_retry_after
    backoff.success()
    assert backoff.ready() and backoff.failures == 0


def test_breaker_opens_after_repeated_failures_and_probes_after_its_cooldown() -> None:
    clock = Clock()
    backoff = Backoff(base=0.1, breaker_threshold=3, breaker_cooldown=60.0, clock=clock, jitter=lambda a, b: 1.0)
    backoff.failure()
    backoff.failure()
    assert not backoff.breaker_open
    assert backoff.failure() == 60.0
    assert backoff.breaker_open and not backoff.ready()
    clock.now += 59.9
    assert backoff.breaker_open
    clock.now += 0.2
    assert not backoff.breaker_open and backoff.ready()  # one probe may go


@pytest.mark.parametrize(
    ("status", "delivered", "retryable"),
    [
        (200, True, False),
        (202, True, False),
        (400, False, False),
        (401, False, False),
        (413, False, False),
        (429, False, True),
        (500, False, True),
        (503, False, True),
    ],
)
def test_status_classes(status: int, delivered: bool, retryable: bool) -> None:
    answer = classify_status(status)
    assert (answer.delivered, answer.retryable) == (delivered, retryable)


def test_retry_after_seconds_dates_and_garbage() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("inf") is None and parse_retry_after("nan") is None
    assert parse_retry_after("soon") is None and parse_retry_after("") is None and parse_retry_after(None) is None
    in_a_minute = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=60), usegmt=True)
    assert 55 <= parse_retry_after(in_a_minute) <= 61  # type: ignore[operator]
