"""The terminal side of the stages: their command lines, one-line errors, and progress bars.

Nothing here shapes a result, so no stage lists this module among its DVC deps: a help text or a
progress bar can change without rerunning anything. (`tests/test_dvc_yaml.py` checks that no
library module imports it: only stage modules and tools do.)
"""

import argparse
import dataclasses
import sys
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

from rlrepro.core.errors import UserError

T = TypeVar("T")

# The help text of every stage option, by option name.
HELP = {
    "params": "the params file (default: params.yaml)",
    "exp": "experiment name in params.yaml",
    "seed": "the training seed (one of params' seeds)",
    "requirements": "the package lock file (requirements.txt)",
    "references": "the committed physics digests (references/physics.json)",
    "facts": "where to write this machine's facts (untracked)",
    "reports": "the folder of JSON reports to write (<exp>.json)",
    "model": "the checkpoint (.zip)",
    "curve": "the learning curve to write (.csv)",
    "trace": "the training trace to write (.csv)",
    "progress": "the evaluations during training to write (.csv)",
    "timing": "the wall-clock record to write (untracked)",
    "episodes": "the per-episode evaluation results to write (.csv)",
    "summary": "the evaluation summary to write (.json)",
    "evals": "the folder of evaluation CSVs (<exp>-<seed>.csv)",
    "progress_dir": "the folder of progress CSVs (<exp>-<seed>.csv)",
    "metrics": "the folder of headline metrics to write (<exp>.json, for dvc metrics)",
    "stats": "the folder of detailed statistics (<exp>.json)",
    "curves": "the folder of training curves (<exp>-<seed>.csv)",
    "mean_curves": "the folder of mean curves by env step to write (<exp>.csv, for dvc plots)",
    "episode_curves": "the folder of mean curves by episode to write (<exp>.csv)",
    "figures": "the folder of PNG figures to write",
    "page": "the Markdown page to write",
}


def parse(
    doc: str, paths: type[T], argv: list[str] | None, **selectors: type
) -> tuple[Path, dict[str, Any], T]:
    """Parse a stage's command line: `--params`, one required option per selector (e.g.
    `exp=str`) and one per field of the dataclass `paths` (`--field-name`, a path).

    :param doc: the stage module's docstring; its first line is the description.
    :return: the params path, the selectors' values and the paths.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help=HELP["params"])
    for name, kind in selectors.items():
        parser.add_argument(f"--{name}", type=kind, required=True, help=HELP[name])
    hints = typing.get_type_hints(paths)
    for field in dataclasses.fields(paths):  # type: ignore[arg-type]
        option = "--" + field.name.replace("_", "-")
        parser.add_argument(option, type=hints[field.name], required=True, help=HELP[field.name])
    args = vars(parser.parse_args(argv))
    chosen = {name: args[name] for name in selectors}
    values = {f.name: args[f.name] for f in dataclasses.fields(paths)}  # type: ignore[arg-type]
    return args["params"], chosen, paths(**values)


def run(work: Callable[[], object]) -> int:
    """Call `work`; our own errors (`UserError`) become one line on stderr and their exit code
    (2; 128 + N after signal N). Anything else is a bug and keeps its traceback."""
    try:
        work()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


class Progress:
    """Report how much of a budget is done, on `stream` (stderr by default; never tracked): a bar
    on a terminal, a plain line every tenth of the budget otherwise.

    :param total: the budget.
    :param unit: what the budget counts ("steps", "episodes").
    :param label: the run's name, e.g. "cartpole-ppo seed 0".
    """

    def __init__(self, total: int, unit: str, label: str, stream: TextIO | None = None) -> None:
        self.total, self.unit, self.label = total, unit, label
        self.stream = stream or sys.stderr
        self.done = 0
        self._next_line = 0
        self._first: tuple[int, float] | None = None  # (done, time) at the first update
        self._bar = None
        if self.stream.isatty():
            from tqdm import tqdm  # only on a terminal: a plain run does not pay its import

            self._bar = tqdm(total=total, unit=unit, desc=label, file=self.stream)

    def update(self, done: int) -> None:
        """Set the amount done so far to `done`."""
        if self._bar is not None:
            self._bar.update(done - self.done)
        elif done >= self._next_line:
            line = f"{self.label}: {done:,}/{self.total:,} {self.unit}{self._eta(done)}"
            print(line, file=self.stream, flush=True)
            self._next_line = done + max(1, self.total // 10)
        self.done = done

    def _eta(self, done: int) -> str:
        """ ", about 3m20s left", from the speed since the first update; "" before it."""
        now = time.monotonic()
        if self._first is None:
            self._first = (done, now)
        start, began = self._first
        if done <= start:
            return ""
        left = round((now - began) / (done - start) * (self.total - done))
        hours, rest = divmod(left, 3600)
        return f", about {f'{hours}h' if hours else ''}{rest // 60}m{rest % 60:02d}s left"

    def close(self) -> None:
        """End the bar, or print the final line."""
        if self._bar is not None:
            self._bar.close()
        else:
            print(f"{self.label}: done, {self.done} {self.unit}", file=self.stream, flush=True)
