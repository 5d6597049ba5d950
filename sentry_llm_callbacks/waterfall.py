"""``sentry_llm_callbacks.waterfall``: trace drawing, at the import path users know.

The code lives in :mod:`sentry_llm_callbacks.devtools.waterfall`.
"""

from sentry_llm_callbacks.devtools.waterfall import *  # noqa: F403
from sentry_llm_callbacks.devtools.waterfall import __all__ as __all__
