"""The project's own error type.

Every mistake a user can make (a bad file, an unknown metal, a checkpoint for another task) is
raised as an `InvdesignError` at the place where the bad value enters, with a message that names the
file or value and the problem. The CLI turns it into one line on stderr and a non-zero exit code,
without a traceback.
"""

from __future__ import annotations

from os import PathLike


class InvdesignError(Exception):
    """A user-facing error: bad input, bad configuration, missing data.

    Args:
        message: what is wrong, in one line.
        path: the file or folder the problem is about, if any; it is prefixed to the message.
    """

    def __init__(self, message: str, path: str | PathLike | None = None) -> None:
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class DataFormatError(InvdesignError):
    """A data file exists but its content is not what its format promises."""


class ConfigError(InvdesignError):
    """A configuration file or override is invalid."""


class CheckpointError(InvdesignError):
    """A checkpoint cannot be loaded or does not fit the request (wrong task, wrong model)."""
