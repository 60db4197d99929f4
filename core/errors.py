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


class MissingExtraError(CellQCError):
    """A feature needs an optional part of cellqc (an extra of ``pyproject.toml``) that is not
    installed; the message names the extra and the command that installs it."""

    def __init__(self, what: str, extra: str):
        self.what = what
        self.extra = extra
        super().__init__(f"{what} needs the {extra} extra: pip install 'cellqc[{extra}]'")
