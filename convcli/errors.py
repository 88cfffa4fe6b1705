"""The exceptions convcli raises for its users' mistakes (bugs stay ordinary exceptions).

Library messages speak in the library's terms: a `ParameterError` names the keyword
argument at fault (``parameter``), and mentions of other arguments are written as
``name=value``.  The command line translates both into its flags (`convcli.cli`).
"""


class ConvcliError(Exception):
    """A problem the user can fix; the CLI prints its message on one line.

    ``exit_code`` follows the CLI's convention: 2 for usage, 1 for failures.
    """

    exit_code = 1


class ParameterError(ConvcliError, ValueError):
    """A parameter has a value that is not allowed.

    Parameters
    ----------
    message : str
        What was wrong and what is allowed.
    parameter : str, optional
        The keyword argument at fault (``"ridge"``, ``"cout"``); the message continues
        its name (``ridge`` + ``must be ≥ 0``).
    """

    exit_code = 2

    def __init__(self, message: str, parameter: str | None = None):
        super().__init__(message)
        self.message = message
        self.parameter = parameter

    def __str__(self) -> str:
        return f"{self.parameter} {self.message}" if self.parameter else self.message


class FileError(ConvcliError):
    """A file cannot be read or written (missing, permissions, a full disk); the message
    names it."""


class FileFormatError(FileError, ParameterError):
    """A file the user named is not in a form convcli takes: not valid YAML, too large,
    too deeply nested, with aliases that expand past the budget, or a name that cannot
    become part of a path."""

    exit_code = 2


class KernelError(ParameterError):
    """A kernel spec, kernel file or catalogue entry cannot be used."""


class ImageError(FileError):
    """An image cannot be read or written."""
