"""The one base class of every error tui-lab reports to a user as a message, not a traceback."""


class TuiLabError(Exception):
    """An error whose ``str()`` is a complete user-facing message (file, key or value at fault).

    The CLI prints it and exits with :attr:`exit_code` (2: bad input; 1: a run that failed)."""

    exit_code = 2
