"""The built wheel, installed in a clean virtual environment as a user would install it, imports,
declares every extra, and traces a chain with the ``[langchain]`` extra.

Needs the wheel built first: ``.ci/run`` runs ``python -m build`` and sets ``SLC_DIST_DIR``."""

from __future__ import annotations

import json
import os
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

from sentry_llm_callbacks import __version__
from sentry_llm_callbacks.devtools.receiver import LocalReceiver

pytestmark = pytest.mark.packaging

#: Each extra and one requirement it must bring.
EXTRAS = {
    "langchain": "langchain-core",
    "langgraph": "langgraph",
    "llamaindex": "llama-index-core",
    "jupyter": "ipython",
    "all": "sentry-llm-callbacks[jupyter,langchain,langgraph,llamaindex]",
    "dev": "pytest",
}

#: Run inside the clean environment: metadata of every extra, then a traced chain.
PROBE = """
import importlib.metadata as md, json, sys
import sentry_llm_callbacks as slc
from langchain_core.runnables import RunnableLambda
from sentry_llm_callbacks.langchain import SentryCallbackHandler

slc.configure(dsn=sys.argv[1])
RunnableLambda(lambda x: x + 1).invoke(1, config={"callbacks": [SentryCallbackHandler()]})
print(json.dumps({
    "version": slc.__version__,
    "delivered": slc.flush(10),
    "requires": md.requires("sentry-llm-callbacks"),
    "extras": md.metadata("sentry-llm-callbacks").get_all("Provides-Extra"),
    "file": slc.__file__,
}))
"""


@pytest.fixture(scope="module")
def wheel() -> Path:
    folder = os.environ.get("SLC_DIST_DIR")
    if not folder:
        pytest.skip("set SLC_DIST_DIR to the folder `python -m build` wrote to (.ci/run does)")
    wheels = sorted(Path(folder).glob(f"sentry_llm_callbacks-{__version__}-*.whl"))
    assert wheels, f"no wheel for version {__version__} in {folder}"
    return wheels[-1]


def test_the_wheel_ships_its_data_files(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    layers = ("base", "config", "core", "export", "sentry_sdk", "devtools", "langchain", "llamaindex")
    needed = ["sentry_llm_callbacks/py.typed", "sentry_llm_callbacks/devtools/collector.py"]
    needed += [f"sentry_llm_callbacks/devtools/static/trace_page.{ext}" for ext in ("css", "js")]
    needed += [f"sentry_llm_callbacks/{layer}/__init__.py" for layer in layers]
    for name in needed:
        assert name in names
    assert not any(name.startswith("tests/") for name in names)


def test_the_wheel_installs_in_a_clean_environment_and_traces(
    wheel: Path, tmp_path: Path, receiver: LocalReceiver
) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{wheel}[langchain]"], capture_output=True, text=True, timeout=600
    )
    assert install.returncode == 0, install.stderr
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    probe = subprocess.run(
        [str(python), "-c", PROBE, receiver.dsn],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["version"] == __version__
    assert found["file"].startswith(str(env_dir)), "imported from the source tree, not the installed wheel"
    assert found["delivered"] is True
    spans = receiver.wait_for_spans(1, 10)
    assert len(spans) == 1 and not spans[0].parent_span_id
    assert set(EXTRAS) <= set(found["extras"])
    for extra, requirement in EXTRAS.items():
        assert any(r.startswith(requirement) and f'extra == "{extra}"' in r for r in found["requires"]), (
            extra,
            found["requires"],
        )
