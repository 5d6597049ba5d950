"""What the tests share that is not a fixture (fixtures live in ``conftest.py``).

Test modules import from here and never from each other: local endpoints (the Sentry-like
receiver that can fail, an OpenAI-compatible server, the app's Sentry SDK endpoint), the
trace-invariant checker, reading what arrived, waiting on a condition, skip markers, and the
framework objects several suites build on.
"""
