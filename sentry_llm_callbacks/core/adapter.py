"""The adapter contract: what a framework adapter provides, what it may use, and the registry.

An adapter turns one framework's events into calls on the process's :class:`Recorder`, and
nothing else: it never writes span attributes, never sees the export side, never reads the
configuration. It may use

* :func:`recorder`: the one recorder of the process (start / end / fail runs, ``record_*``),
* the neutral values of :mod:`.calls` and :mod:`.message_shapes` (a model request and response,
  a tool call, a retrieval, content shapes), :class:`~.usage.Usage`, the run kinds of
  :class:`~.kinds.RunKind`, and :class:`~.metadata.MetadataLayer` for a handler's and a run's
  metadata (``user``, ``session_id``, ``trace``, ``privacy_mode``, ``prompt_name`` /
  ``prompt_version``; :func:`~.metadata.prompt_ref` reads a template's named prompt the same way),
* :func:`sentry_llm_callbacks.base.log.guarded` to keep its callbacks from ever raising into the app.

It provides an object satisfying :class:`Adapter` and registers it when its module is imported
(``register(ADAPTER)``). A new framework is a new package (``sentry_llm_callbacks/<name>/``),
one line in :data:`BUILT_IN`, and one optional extra in ``pyproject.toml``;
:func:`set_global_handler`, :func:`unset_global_handler` and nesting across frameworks read the
registry.

Example (a framework of plain functions)::

    from sentry_llm_callbacks.core import adapter
    from sentry_llm_callbacks.core.kinds import RunKind

    class ToyAdapter:
        name = "toy"
        def set_global_handler(self, **handler_kwargs): ...
        def unset_global_handler(self): ...
        def current_run(self): return None

    adapter.register(ToyAdapter())
    run = adapter.recorder().start_run("k", None, kind=RunKind.TOOL, name="search",
                                       explicit_name=False, handler_layer=None)
    adapter.recorder().end_run("k")
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sentry_llm_callbacks.base.errors import ConfigurationError

if TYPE_CHECKING:
    from sentry_llm_callbacks.core.recorder import Recorder

_log = logging.getLogger("sentry_llm_callbacks")


@runtime_checkable
class Adapter(Protocol):
    """One framework's adapter."""

    #: The framework's name, as :func:`set_global_handler` takes it (``"langchain"``).
    name: str

    def set_global_handler(self, **handler_kwargs: Any) -> Any:
        """Trace every run of the framework in the process (``user``, ``session_id``, ``trace``,
        ``privacy_mode``, as a handler takes them)."""
        ...

    def unset_global_handler(self) -> None:
        """Stop global tracing; handlers given explicitly keep working."""
        ...

    def current_run(self) -> Hashable | None:
        """The key of the framework's run whose code is running now, or None: a root run of
        another framework started there nests under it. Called at every root: must be cheap."""
        ...


@dataclass(frozen=True, slots=True)
class FrameworkAdapter:
    """An :class:`Adapter` made of an adapter module's own functions.

    Example::

        ADAPTER = FrameworkAdapter("langchain", set_global_handler, unset_global_handler, current_run)
        register(ADAPTER)
    """

    name: str
    set_global_handler: Callable[..., Any]
    unset_global_handler: Callable[[], None]
    current_run: Callable[[], Hashable | None]


#: The frameworks this package has adapters for: name -> the module that registers its adapter.
BUILT_IN: dict[str, str] = {
    "langchain": "sentry_llm_callbacks.langchain",
    "llamaindex": "sentry_llm_callbacks.llamaindex",
}

_registered: dict[str, Adapter] = {}
_recorder: Recorder | None = None


def use_recorder(recorder: Recorder) -> None:
    """Make ``recorder`` the process's (done once, by the composition root, at import)."""
    global _recorder
    _recorder = recorder


def recorder() -> Recorder:
    """The process's recorder, shared by every adapter and handler."""
    if _recorder is None:  # importing any adapter imports the package, which installs it
        raise RuntimeError("sentry_llm_callbacks is not initialised: import sentry_llm_callbacks first")
    return _recorder


def register(adapter: Adapter) -> None:
    """Add ``adapter`` to the registry, and its :meth:`Adapter.current_run` to the places a root
    run looks for a parent of another framework."""
    _registered[adapter.name] = adapter
    lookups = recorder().ambient_parents
    if adapter.current_run not in lookups:
        lookups.append(adapter.current_run)


def unregister(name: str) -> None:
    """Remove an adapter registered under ``name`` (a built-in one comes back at the next lookup)."""
    found = _registered.pop(name, None)
    if found is not None:
        lookups = recorder().ambient_parents
        if found.current_run in lookups:
            lookups.remove(found.current_run)


def names() -> tuple[str, ...]:
    """Every framework known: the built-in ones, then any registered at run time."""
    return (*BUILT_IN, *(name for name in _registered if name not in BUILT_IN))


def get(name: str) -> Adapter | None:
    """The adapter for ``name``, importing a built-in one on first use; None when its framework
    is not installed (or ``name`` is unknown)."""
    found = _registered.get(name)
    if found is not None:
        return found
    module = BUILT_IN.get(name)
    if module is None:
        return None
    try:
        importlib.import_module(module)  # a plugin load by name: the module registers itself
    except ImportError as exc:
        _log.debug("%s tracing not available: %s", name, exc)
        return None
    return _registered.get(name)


def _frameworks(frameworks: Iterable[str] | str | None) -> tuple[str, ...]:
    if frameworks is None:
        return tuple(BUILT_IN)
    if isinstance(frameworks, str):
        return (frameworks,)
    return tuple(frameworks)


def set_global_handler(frameworks: Iterable[str] | str | None = None, **handler_kwargs: Any) -> None:
    """Trace every run of ``frameworks`` (default: every built-in one) with no ``callbacks=``;
    frameworks that are not installed are skipped. Raises :class:`ConfigurationError` for a
    name that is no framework."""
    chosen = _frameworks(frameworks)
    known = names()
    for name in chosen:
        if name not in known:
            example = "(" + ", ".join(repr(n) for n in BUILT_IN) + ")"
            raise ConfigurationError("frameworks", f"unknown framework {name!r}", example)
    for name in chosen:
        found = get(name)
        if found is not None:
            found.set_global_handler(**handler_kwargs)


def unset_global_handler(frameworks: Iterable[str] | str | None = None) -> None:
    """Stop global tracing of ``frameworks`` (default: every built-in one)."""
    for name in _frameworks(frameworks):
        found = get(name)
        if found is not None:
            found.unset_global_handler()
