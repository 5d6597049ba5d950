"""Exceptions raised by the public API."""

from __future__ import annotations

from collections.abc import Callable


def python_spelling(option: str) -> str:
    """How Python code turns on a boolean option: ``allow_insecure_http=True``."""
    return f"{option}=True"


class ConfigurationError(ValueError):
    """A configuration value is wrong.

    The message names the field, says what is wrong and shows a value that would work.
    It never contains the DSN's public key. When a boolean option would let the value through
    (``allow_insecure_http``), it is named in ``allowed_by`` and the message says when to set
    it; :meth:`phrased` spells it another way (a command line's flag).
    """

    def __init__(
        self, field: str, problem: str, example: str, *, allowed_by: str | None = None, allowed_when: str = ""
    ) -> None:
        self.field = field
        self.example = example
        self.allowed_by = allowed_by
        self._problem = problem
        self._allowed_when = allowed_when
        self.problem = self._problem_in(python_spelling)
        super().__init__(self.phrased())

    def _problem_in(self, spell: Callable[[str], str]) -> str:
        if self.allowed_by is None:
            return self._problem
        return f"{self._problem}, or pass {spell(self.allowed_by)} {self._allowed_when}".rstrip()

    def phrased(self, spell: Callable[[str], str] = python_spelling) -> str:
        """The message, with the option that would allow the value spelled by ``spell``.

        >>> error = ConfigurationError("dsn", "plain http://", "https://...", allowed_by="allow_insecure_http")
        >>> error.phrased(lambda name: "--" + name.replace("_", "-"))
        'dsn: plain http://, or pass --allow-insecure-http. Example of a valid value: https://...'
        """
        return f"{self.field}: {self._problem_in(spell)}. Example of a valid value: {self.example}"
