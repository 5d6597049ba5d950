"""Every attribute key attributes.py takes from a registry is equal to the registry's, and the
package is imported without loading the registry."""

from __future__ import annotations

import subprocess
import sys

from opentelemetry.semconv.attributes import telemetry_attributes
from sentry_conventions.attributes import ATTRIBUTE_METADATA, ATTRIBUTE_NAMES

from sentry_llm_callbacks.core import attributes as attr


def test_keys_from_sentry_conventions_are_the_registrys() -> None:
    assert len(attr.FROM_SENTRY_CONVENTIONS) >= 40
    for ours, theirs in attr.FROM_SENTRY_CONVENTIONS.items():
        assert getattr(attr, ours) == getattr(ATTRIBUTE_NAMES, theirs), ours
        assert getattr(attr, ours) in ATTRIBUTE_METADATA, ours


def test_deprecated_spellings_we_still_send_are_registered() -> None:
    for ours in attr.DEPRECATED_BUT_READ:
        assert getattr(attr, ours) in ATTRIBUTE_METADATA, ours


def test_keys_from_opentelemetry_semconv_are_theirs() -> None:
    for ours, theirs in attr.FROM_OTEL_SEMCONV.items():
        assert getattr(attr, ours) == getattr(telemetry_attributes, theirs), ours


def test_importing_the_package_does_not_load_the_registry() -> None:
    code = "import sys, sentry_llm_callbacks; print('sentry_conventions' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
