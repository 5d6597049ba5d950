"""Our random numbers: span and trace ids, and the jitter of export retries.

They come from a generator of our own, seeded from the operating system, never from the
``random`` module's shared one. An app that seeds ``random`` for reproducible runs
(``random.seed(42)`` in an evaluation script) would otherwise get the same trace ids in every
run, and Sentry would join those runs' traces into one; and every span we started would move the
app's own sequence on, so its "reproducible" results would change when tracing is on. A forked
child reseeds the generator, as ``random`` does its own: parent and child must not make the same
ids, nor retry in step.
"""

from __future__ import annotations

import os
import random

_GENERATOR = random.Random()  # seeded from os.urandom
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_GENERATOR.seed)

#: ``getrandbits(k)`` of our generator (thread-safe: one C call under the interpreter lock).
random_bits = _GENERATOR.getrandbits
#: ``uniform(a, b)`` of our generator.
uniform = _GENERATOR.uniform


def new_span_id() -> int:
    """A random 64-bit span id, never 0 (0 is OpenTelemetry's invalid id)."""
    return random_bits(64) or 1


def new_trace_id() -> int:
    """A random 128-bit trace id, never 0."""
    return random_bits(128) or 1
