"""The terminal side of the stages: their command lines, one-line errors, and progress bars.

Nothing here shapes a result, so no stage lists this module among its DVC deps: a help text or a
progress bar can change without rerunning anything. (`tests/test_dvc_yaml.py` checks that no
library module imports it: only stage modules and tools do.)
"""

import argparse
import contextlib
import dataclasses
import itertools
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar

from rlrepro.core.errors import StoppedError, UserError

T = TypeVar("T")

# The help text of every stage option, by option name.
HELP = {
    "params": "the params file (default: params.yaml)",
    "exp": "experiment name in params.yaml",
    "seed": "the training seed (one of params' seeds)",
    "stage": "instead of the other options: the stage's DVC address ($DVC_STAGE), which names "
    "its run, e.g. train@cartpole-ppo-0; its files are the pipeline's (rlrepro.core.layout)",
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
    doc: str,
    paths: type[T],
    argv: list[str] | None,
    address: Callable[[str, Path], tuple[dict[str, Any], T]] | None = None,
    **selectors: type,
) -> tuple[Path, dict[str, Any], T]:
    """Parse a stage's command line: `--params`, one required option per selector (e.g.
    `exp=str`) and one per field of the dataclass `paths` (`--field-name`, a path).

    :param doc: the stage module's docstring; its first line is the description.
    :param address: for a matrix stage, what the selectors and paths are from DVC's address of
        the stage (`--stage "$DVC_STAGE"`, so that dvc.yaml passes no params value through a
        shell) and the params file: `--stage` is then an alternative to all the other options
        but `--params`, exactly one of the two forms.
    :return: the params path, the selectors' values and the paths.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help=HELP["params"])
    if address is not None:
        parser.add_argument("--stage", help=HELP["stage"])
    hints = typing.get_type_hints(paths)
    fields = [f.name for f in dataclasses.fields(paths)]  # type: ignore[arg-type]
    options = {**selectors, **{name: hints[name] for name in fields}}
    for name, kind in options.items():
        option = "--" + name.replace("_", "-")
        parser.add_argument(option, type=kind, required=address is None, help=HELP[name])
    args = vars(parser.parse_args(argv))
    if address is not None:
        given = ["--" + name.replace("_", "-") for name in options if args[name] is not None]
        if args["stage"] is not None and given:
            parser.error(f"--stage goes alone: drop {', '.join(given)}")
        if args["stage"] is not None:
            chosen, found = address(args["stage"], args["params"])
            return args["params"], chosen, found
        if len(given) < len(options):
            missing = [f"--{n.replace('_', '-')}" for n in options if args[n] is None]
            parser.error(f"the following arguments are required: {', '.join(missing)} (or --stage)")
    chosen = {name: args[name] for name in selectors}
    return args["params"], chosen, paths(**{name: args[name] for name in fields})


def run(work: Callable[[], object]) -> int:
    """The error boundary of every command: call `work` and :return: its exit code (what it
    returned when that is an int, else 0).

    - Our own errors (`UserError`) become one line `error: ...` on stderr and their exit code
      (2; 128 + N after signal N).
    - Ctrl-C (`KeyboardInterrupt`) becomes one line and exit 130; SIGTERM, when nothing else
      handles it, one line and exit 143 (`StoppedError`, raised where the signal lands).
    - Anything else is a bug: one line `internal error: <type>: <message>; traceback in <file>`
      and exit 3, the full traceback written to that file (`traceback_file`).

    argparse's own exits (`SystemExit`: a usage error, `--help`) pass through unchanged.
    """
    with _terminate_raises():
        try:
            result = work()
        except UserError as err:
            print(f"error: {one_line(str(err), limit=None)}", file=sys.stderr, flush=True)
            return err.exit_code
        except KeyboardInterrupt:
            print("error: stopped by SIGINT (Ctrl-C)", file=sys.stderr, flush=True)
            return 128 + signal.SIGINT
        except Exception as err:
            where = _write_traceback(err)
            line = f"{type(err).__name__}: {one_line(str(err)) or '(no message)'}"
            print(f"internal error: {line}; traceback in {where}", file=sys.stderr, flush=True)
            return INTERNAL_ERROR
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


INTERNAL_ERROR = 3  # the exit code of a bug (an exception that is not a `UserError`)
ERRORS_FOLDER = Path(".dvc", "tmp", "rlrepro-errors")  # in the project: untracked scratch


def one_line(text: str, limit: int | None = 160) -> str:
    """`text` as one line: its lines joined by " | " (blank ones and indentation dropped),
    cut to `limit` characters with "..." (None: not cut)."""
    line = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    if limit is not None and len(line) > limit:
        return line[: limit - 3] + "..."
    return line


@contextlib.contextmanager
def _terminate_raises() -> Iterator[None]:
    """Inside, SIGTERM raises `StoppedError` (exit 143) where it lands, when it would otherwise
    kill the process without a word (its handler is the default, in the main thread)."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _raise_stopped(signum: int, _frame: object) -> None:
    """A signal handler: :raises StoppedError: for signal `signum` (a second one kills)."""
    signal.signal(signum, signal.SIG_DFL)
    raise StoppedError(f"stopped by {signal.Signals(signum).name}", signum)


def project_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` that holds a `.dvc` folder (None: none)."""
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return None


def _command() -> str:
    """The running command's name for a file name, e.g. `stages.train` (`python -m`)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = spec.name if spec is not None else Path(sys.argv[0] or "python").stem
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:60] or "python"


def traceback_file(prefix: str) -> tuple[Path, TextIO]:
    """A new file for a traceback, named `<prefix>-<pid>-<n>.log`: in the project's
    `.dvc/tmp/rlrepro-errors/` (the project: the nearest folder up from here with `.dvc`),
    else (none, or not writable) in the system's temporary folder. :return: it, open."""
    root = project_root(Path.cwd())
    folders = [root / ERRORS_FOLDER] if root is not None else []
    folders.append(Path(tempfile.gettempdir()) / f"rlrepro-errors-{os.getuid()}")
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for n in itertools.count():
                path = folder / f"{prefix}-{os.getpid()}-{n}.log"
                try:
                    return path, path.open("x", encoding="utf-8")
                except FileExistsError:
                    continue
        except OSError:
            continue
    raise OSError("no writable folder for a traceback")


def _write_traceback(err: BaseException) -> str:
    """Write `err`'s traceback to a new `traceback_file`; :return: its path as the line shows
    it (relative to here when inside; `(not written: ...)` when nothing could be written)."""
    try:
        path, file = traceback_file(_command())
        with file:
            file.write(f"{' '.join(sys.argv)}\n")
            traceback.print_exception(err, file=file)
    except OSError as failed:
        return f"(not written: {failed})"
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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
