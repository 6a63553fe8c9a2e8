"""The one exception family of publisher.

Every error a user can cause is a ``PublisherError`` carrying a plain ``message``
and an optional ``hint``; only the CLI and the web error handler turn it into
output, so library code never prints or exits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


class PublisherError(Exception):
    """Base of every error meant for a human: a message and how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        """The error as the lines a user should see, one per problem."""
        return [self.message]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input, located as precisely as we can."""

    where: str  # a file path or a config key path
    message: str
    line: int | None = None

    def __str__(self) -> str:
        loc = f"{self.where}:{self.line}" if self.line else self.where
        return f"{loc}: {self.message}"


class ProblemsError(PublisherError):
    """Several problems found at once, so the user fixes them in one go."""

    def __init__(self, problems: list[Problem], message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.problems = list(problems)

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]

    def __str__(self) -> str:
        return "\n".join(self.lines())


class ConfigError(ProblemsError):
    """config.yaml (or an environment override) is unusable."""

    def __init__(self, problems: list[Problem], hint: str | None = None) -> None:
        super().__init__(problems, f"{len(problems)} problem(s) in the configuration", hint)


class ContentError(ProblemsError):
    """Articles or issues that cannot be published as they are."""

    def __init__(self, problems: list[Problem], hint: str | None = None) -> None:
        super().__init__(problems, f"{len(problems)} problem(s) in the content", hint)


class NotFoundError(PublisherError):
    """A named thing (issue, subscriber, send) does not exist."""


class RenderError(PublisherError):
    """An issue could not be turned into an email or page (template error, size limit)."""


class DeliveryError(PublisherError):
    """Mail could not be handed to the server."""


class StoreError(PublisherError):
    """The database refused an operation or is in a state we cannot use."""


def relpath(path: Path, base: Path | None = None) -> str:
    """A path as a user would type it: relative to ``base`` (or the cwd) when possible."""
    base = base or Path.cwd()
    try:
        return str(path.resolve().relative_to(_resolved(base)))
    except ValueError:
        return str(path)


@lru_cache(maxsize=64)
def _resolved(base: Path) -> Path:
    """A project folder, resolved once a process (each email names its file: a stat chain each)."""
    return base.resolve()


def and_more(items: Sequence[str], shown: int = 8) -> str:
    """``items`` joined by commas, cut after ``shown`` with how many were left out.

    A hint that lists choices must not pass a short list off as the whole one.
    """
    head = ", ".join(items[:shown])
    left = len(items) - shown
    return f"{head} … and {left} more" if left > 0 else head
