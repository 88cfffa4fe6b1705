"""The exceptions convcli raises for its users' mistakes (bugs stay ordinary exceptions)."""


class ConvcliError(Exception):
    """A problem the user can fix; the CLI prints its message on one line.

    ``exit_code`` follows the CLI's convention: 2 for usage, 1 for failures.
    """

    exit_code = 1


class ParameterError(ConvcliError, ValueError):
    """A parameter or option has a value that is not allowed."""

    exit_code = 2


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
