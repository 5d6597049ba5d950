import sys

from sentry_llm_callbacks.devtools.cli import main

sys.exit(main())
