"""The error a user caused, as opposed to a bug.

The CLI turns a ``UserError`` into one line and exit code 2; any other exception is a bug in
this package and is allowed to show its traceback. Keeping the two apart is what lets us promise
"never a traceback for a user mistake" without hiding real bugs.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Something the user can fix: bad input file, bad config value, missing folder.

    ``where`` is a file (optionally ``file:line``), ``what`` says what is wrong and ``fix`` how to
    fix it, so the one-line message always answers all three questions.
    """

    def __init__(self, what: str, *, where: str | Path | None = None, line: int | None = None,
                 fix: str | None = None) -> None:
        self.what = what
        self.where = str(where) if where is not None else None
        self.line = line
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = []
        if self.where:
            parts.append(f"{self.where}:{self.line}" if self.line is not None else self.where)
        parts.append(self.what)
        msg = ": ".join(parts)
        if self.fix:
            msg += f" ({self.fix})"
        return msg


class ConfigError(UserError):
    """A config file or ``--set`` override that does not validate."""


class DataError(UserError):
    """A raw or prepared data file that cannot be read as the format it claims to be."""
