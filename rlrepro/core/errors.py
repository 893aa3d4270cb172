"""Our own error types: the only ones a stage turns into one line on stderr and exit code 2
(`StoppedError`: 128 + the signal's number).

Anything else (a bug here, in SB3, numpy or torch) is one line `internal error: ...` and exit
3, its traceback written to a file (`rlrepro.console.run`).
"""


class UserError(Exception):
    """Something the user can fix; its message is one line saying what and what to do."""

    exit_code = 2


class ParamsError(UserError):
    """A bad value in params.yaml; its message names the key and what is accepted."""


class StageError(UserError):
    """A check that failed or an input that is missing (a file, a package version)."""


class CheckpointError(UserError):
    """A checkpoint this code cannot read: another format version, or not a checkpoint."""


class StoppedError(UserError):
    """SIGTERM or SIGINT stopped a training after it wrote a snapshot to resume from."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum  # as a shell reports a signal
