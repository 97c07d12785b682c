"""User-facing errors: the one base type `ssiw` turns into `error: <message>` and exit status 1.

Raise an `SsiwError` when what the user gave is wrong: a missing or malformed file, an unknown
dataset, format, split or label, a bad option or config. The message names the file (or the value)
and the reason. Anything else — a bug, a full disk — is not an SsiwError: the command ends with its
traceback, so it is never mistaken for a user's mistake.

The three kinds below also derive from the built-in type they replaced, so callers that catch
ValueError / FileNotFoundError / KeyError for their own reasons keep working.
"""

from __future__ import annotations


class SsiwError(Exception):
    """A problem with the user's input; `str(e)` is the whole message shown to them."""


class BadInput(SsiwError, ValueError):
    """A value, option, config or file content that cannot be used."""


class NotFound(SsiwError, FileNotFoundError):
    """A file or folder the user named, or that an earlier step should have made, is missing."""


class UnknownName(SsiwError, KeyError):
    """An unknown dataset, format, split or label."""

    def __str__(self) -> str:  # KeyError would quote the message like a dict key
        return str(self.args[0]) if self.args else ""
