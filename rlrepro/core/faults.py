"""Faults on purpose, for the tests: a train stage sends itself a signal at a point it names, so
a test kills or stops it there and nowhere else (a kill timed from outside can land after the
training has ended).

`RLREPRO_FAULT=SIGNAL@POINT:N`, read from the environment:
- `SIGNAL`: `KILL`, `TERM` or `INT`;
- `POINT:N`: `progress:N`, when a progress report first says at least N (env steps, or
  episodes for an episode budget) are done; `write:N`, inside the N-th snapshot write of the
  process (from 1), after part of the file is written and before it is renamed into place.

Unset (as always outside the tests), nothing happens. Nothing here shapes a result.
"""

import os
import re
import signal

from rlrepro.core.errors import StageError

VARIABLE = "RLREPRO_FAULT"
_FORMAT = re.compile(r"^(KILL|TERM|INT)@(progress|write):(\d+)$")
_writes = 0


def _planned(point: str) -> tuple[signal.Signals, int] | None:
    """The signal and count planned at `point`, if the environment plans one there.

    :raises StageError: when the variable is set but malformed.
    """
    value = os.environ.get(VARIABLE)
    if not value:
        return None
    match = _FORMAT.match(value)
    if match is None:
        raise StageError(
            f"{VARIABLE}: {value!r} is not SIGNAL@POINT:N (SIGNAL: KILL, TERM or INT; "
            "POINT: progress or write); unset it outside the tests"
        )
    if match[2] != point:
        return None
    return signal.Signals[f"SIG{match[1]}"], int(match[3])


def _fire(signum: signal.Signals) -> None:
    os.environ.pop(VARIABLE, None)  # once per process: a stop's own snapshot is not hit again
    os.kill(os.getpid(), signum)


def at_progress(done: int) -> None:
    """A progress report of `done`: send the planned signal if its count is reached."""
    plan = _planned("progress")
    if plan is not None and done >= plan[1]:
        _fire(plan[0])


def in_write() -> None:
    """Inside a snapshot write: send the planned signal at the planned write."""
    global _writes
    _writes += 1
    plan = _planned("write")
    if plan is not None and _writes == plan[1]:
        _fire(plan[0])
