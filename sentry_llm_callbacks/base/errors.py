"""Exceptions raised by the public API."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """A configuration value is wrong.

    The message names the field, says what is wrong and shows a value that would work.
    It never contains the DSN's public key.
    """

    def __init__(self, field: str, problem: str, example: str) -> None:
        self.field = field
        self.problem = problem
        self.example = example
        super().__init__(f"{field}: {problem}. Example of a valid value: {example}")
