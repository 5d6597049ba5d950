"""Our own requests never show in the app's Sentry data.

The app runs in a fresh interpreter (sentry-sdk patches ``http.client`` and ``threading`` once per
process) with ``sentry_sdk.init(traces_sample_rate=1.0)`` and its default integrations, sending to
a Sentry-like envelope endpoint on 127.0.0.1. Everything it sent is scanned for our export,
``test_connection()`` and ``send_test_trace()`` requests; a request the app makes itself must show,
so the scan can see what it looks for.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from tests.support.environment import REPO_ROOT
from tests.support.sentry_app import EnvelopeEndpoint

APP = r"""
import json, sys, threading, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sentry_sdk
from langchain_core.runnables import RunnableLambda

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.sentry_app import app_transaction

app_dsn, destination = sys.argv[1], json.loads(sys.stdin.read())  # not in argv: the SDK sends argv


class Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


own = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
threading.Thread(target=own.serve_forever, daemon=True).start()

sentry_sdk.init(dsn=app_dsn, traces_sample_rate=1.0)
slc.configure(**destination)
for i in range(3):
    with app_transaction(f"checkout-{i}"):
        RunnableLambda(lambda x: x + 1).invoke(i, config={"callbacks": [SentryCallbackHandler()]})
        assert slc.flush(10)  # our export request runs while the app's request is open
with app_transaction("settings"):
    assert slc.test_connection().ok
    assert slc.send_test_trace().ok
    urllib.request.urlopen(f"http://127.0.0.1:{own.server_port}/app-own-request").read()
    sentry_sdk.capture_message("app error after our requests")  # carries the scope's breadcrumbs
assert slc.flush(10)
sentry_sdk.flush(10)
print("done")
"""

# app DSN host, and where our traces go: a DSN on another host name, a DSN on the app's own host,
# an OpenTelemetry Collector's endpoint without a DSN
CASES = {
    "other-host": ("localhost", "dsn"),
    "same-host": ("127.0.0.1", "dsn"),
    "collector": ("localhost", "otlp_endpoint"),
}


@pytest.mark.parametrize("case", CASES)
def test_the_apps_sentry_sdk_records_none_of_our_requests(case: str) -> None:
    app_host, how = CASES[case]
    endpoint = EnvelopeEndpoint().start()
    try:
        with LocalReceiver() as receiver:
            app_dsn = endpoint.dsn.replace("127.0.0.1", app_host)
            destination = {"dsn": receiver.dsn} if how == "dsn" else {"otlp_endpoint": receiver.plain_endpoint}
            done = subprocess.run(
                [sys.executable, "-c", APP, app_dsn],
                input=json.dumps(destination),
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0 and "done" in done.stdout, done.stderr[-3000:]
            assert len(receiver.wait_for_spans(5, 10)) == 5  # three one-span runs, a two-span test trace
            ours = receiver.endpoint.split("://", 1)[1]  # host:port/.../v1/traces
    finally:
        endpoint.stop()
    sent = b"\n".join(endpoint.raw)
    assert b"checkout-2" in sent and b"app error after our requests" in sent  # the app's data arrived
    assert b"app-own-request" in sent  # the app's own request shows: the SDK instruments http.client here
    port = ours.split("/", 1)[0].encode()
    assert port not in sent and b"v1/traces" not in sent, [
        line[:300] for line in sent.split(b"\n") if port in line or b"v1/traces" in line
    ][:3]
