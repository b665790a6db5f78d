"""The one family of errors that a user's input can cause, and how the CLI shows them.

Every error that bad input can raise (a missing or damaged image, checkpoint, config or data folder; an invalid
override; a full disk) derives from :class:`FocalnetError`. ``focalnet.cli.main`` turns any of them into one line
on stderr, ``focalnet COMMAND: message``, and the exit code the error carries: 2 for usage and configuration
errors (:class:`UsageError`, found before any work starts), 1 for runtime errors. Library callers catch the
specific subclass (``ConfigError``, ``CheckpointError``, ``ImageLoadError`` ...), each of which keeps its
traditional builtin base (``ValueError``, ``OSError``) so existing ``except`` clauses still work.

This module imports nothing from the package, so every layer can use it.
"""

from __future__ import annotations

__all__ = ["FocalnetError", "UsageError", "InputNotFoundError", "one_line"]


class FocalnetError(Exception):
    """A problem with the user's input or environment, with a message that says what to do. Exit code 1."""

    exit_code = 1


class UsageError(FocalnetError):
    """Invalid arguments or configuration, detected before any work starts. Exit code 2."""

    exit_code = 2


class InputNotFoundError(FocalnetError, FileNotFoundError):
    """A file or folder the user named does not exist (still a FileNotFoundError). Exit code 1."""

    def __str__(self) -> str:  # the message as given, not "[Errno ...]"
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


def one_line(message: object, limit: int = 2000) -> str:
    """``message`` as one line: inner lines joined with ``; ``, indentation dropped, very long text cut."""
    text = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    text = text.replace(":;", ":")
    return text if len(text) <= limit else text[: limit - 3] + "..."
