"""The error the ``detcore`` command reports as one line (no traceback). Free
of PyTorch, so the command can report a missing PyTorch too."""


class UsageError(Exception):
    """A user mistake reported as one line, without a traceback."""
