"""Exceptions raised by ``core``; the CLI turns each into one line on stderr and exit code 2."""

from __future__ import annotations


class CellQCError(Exception):
    """Base class of every error cellqc reports to a person as one line."""


class InputError(CellQCError):
    """Bad input: a file that cannot be read, a volume that cannot be inspected.

    The message always names the file (or the option) and what is wrong with it.
    """

    def __init__(self, source: object, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class RecipeError(InputError):
    """A recipe file that is missing, malformed or inconsistent."""


class Cancelled(CellQCError):
    """Raised inside long work when the caller's cancel flag is set."""
