"""Training progress: a bar on a terminal, a plain line every tenth of the budget otherwise."""

import sys
from typing import TextIO

from tqdm import tqdm


class Progress:
    """Report how much of a budget is done, on `stream` (stderr by default; never tracked).

    :param total: the budget.
    :param unit: what the budget counts ("steps", "episodes").
    :param label: the run's name, e.g. "cartpole-ppo seed 0".
    """

    def __init__(self, total: int, unit: str, label: str, stream: TextIO | None = None) -> None:
        self.total, self.unit, self.label = total, unit, label
        self.stream = stream or sys.stderr
        self.done = 0
        self._next_line = 0
        self._bar = (
            tqdm(total=total, unit=unit, desc=label, file=self.stream)
            if self.stream.isatty()
            else None
        )

    def update(self, done: int) -> None:
        """Set the amount done so far to `done`."""
        if self._bar is not None:
            self._bar.update(done - self.done)
        elif done >= self._next_line:
            print(f"{self.label}: {done}/{self.total} {self.unit}", file=self.stream, flush=True)
            self._next_line = done + max(1, self.total // 10)
        self.done = done

    def close(self) -> None:
        """End the bar, or print the final line."""
        if self._bar is not None:
            self._bar.close()
        else:
            print(f"{self.label}: done, {self.done} {self.unit}", file=self.stream, flush=True)
