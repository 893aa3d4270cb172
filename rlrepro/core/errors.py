"""Our own error types: the only ones a stage turns into one line on stderr and exit code 2.

Anything else (a bug here, in SB3, numpy or torch) keeps its traceback.
"""


class UserError(Exception):
    """Something the user can fix; its message is one line saying what and what to do."""


class ParamsError(UserError):
    """A bad value in params.yaml; its message names the key and what is accepted."""


class StageError(UserError):
    """A check that failed or an input that is missing (a file, a package version)."""


class CheckpointError(UserError):
    """A checkpoint this code cannot read: another format version, or not a checkpoint."""
