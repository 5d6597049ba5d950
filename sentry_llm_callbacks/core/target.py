"""What the traces started now are recorded for.

The composition root (:mod:`sentry_llm_callbacks._state`) makes one :class:`Target` per
destination, with the sink of that destination's export pipeline; the recorder asks for the
current one at each trace's root and keeps it with the trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from sentry_llm_callbacks._version import __version__
from sentry_llm_callbacks.config.settings import Destination
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core.content import ContentPolicy
from sentry_llm_callbacks.core.pricing import PriceTable
from sentry_llm_callbacks.core.sampling import TraceSampling
from sentry_llm_callbacks.core.sink import SpanSink

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource


@dataclass(frozen=True, slots=True)
class Target:
    """One destination's settings, the sink its finished spans go to, its sampling decisions, and
    what every span of it shares (resource, instrumentation scope, prices)."""

    settings: Destination
    sink: SpanSink
    sampling: TraceSampling
    resource: Resource
    scope: InstrumentationScope
    prices: PriceTable
    #: The content policy of its traces, and of its traces in Privacy Mode: made once, not per trace.
    policies: tuple[ContentPolicy, ContentPolicy]

    def policy(self, *, private: bool) -> ContentPolicy:
        """The content policy of a trace of this target; ``private``: the trace asks for Privacy Mode."""
        return self.policies[bool(private or self.settings.privacy_mode)]

    @classmethod
    def create(cls, settings: Destination, sink: SpanSink, prices: PriceTable | None = None) -> Target:
        """The target for ``settings`` whose spans go to ``sink``.

        Example::

            Target.create(build_destination(dsn=DSN), pipeline.sink)
        """
        # Loaded with the first trace: it brings psutil, a twentieth of the package's import.
        from opentelemetry.sdk.resources import Resource

        return cls(
            settings=settings,
            sink=sink,
            sampling=TraceSampling(settings.sample_rate, settings.keep, sink),
            resource=Resource.create(resource_attributes(settings)),
            scope=InstrumentationScope("sentry_llm_callbacks", __version__),
            prices=prices if prices is not None else PriceTable(settings.prices),
            policies=(
                ContentPolicy(private=False, max_chars=settings.max_content_chars, mask=settings.mask),
                ContentPolicy(private=True, max_chars=settings.max_content_chars, mask=settings.mask),
            ),
        )


def resource_attributes(settings: Destination) -> dict[str, str]:
    """Who sends: the service, its environment and release, and this package as the SDK."""
    resource = {
        attr.SERVICE_NAME: settings.service_name,
        attr.TELEMETRY_SDK_NAME: "sentry-llm-callbacks",
        attr.TELEMETRY_SDK_VERSION: __version__,
        attr.TELEMETRY_SDK_LANGUAGE: "python",
    }
    if settings.environment:
        resource[attr.DEPLOYMENT_ENVIRONMENT] = settings.environment
    if settings.release:
        resource[attr.SERVICE_VERSION] = settings.release
    return resource
