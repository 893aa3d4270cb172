"""The deterministic evaluation during training, and the wall clock of training.

Every `periodic_eval.every` env steps (and at the start and the end) the current policy plays
`periodic_eval.episodes` seeded episodes on an env of its own; the results are the progress curve
(tracked: the same bytes on every run). The wall-clock seconds of training, without the time spent
evaluating, go to an untracked timing file: they differ on every run, so no hash may see them.
"""

import statistics
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from rlrepro.episodes import Actor, rollout
from rlrepro.params import PeriodicEval

PROGRESS_HEADER = ("step", "episodes", "eval_return_mean", "eval_return_std", "eval_length_mean")


class Evaluator:
    """Evaluates when due, and keeps the training clock.

    :param env_id: the env to evaluate on (a separate instance from the training envs).
    :param settings: when and how long to evaluate; none: never (the clock still runs).
    """

    def __init__(self, env_id: str, settings: PeriodicEval | None) -> None:
        self.settings = settings
        self.env: gym.Env[Any, Any] | None = gym.make(env_id) if settings else None
        self.rows: list[tuple[int, int, float, float, float]] = []
        self.seconds_at: list[tuple[int, float]] = []
        self.steps = 0  # the last env step it was told of
        self._next = 0
        self._start = time.perf_counter()
        self._evaluating = 0.0

    def seconds(self) -> float:
        """Wall-clock seconds since the start, without the time spent evaluating."""
        return time.perf_counter() - self._start - self._evaluating

    def maybe(
        self, step: int, episodes: int, actor: Callable[[], Actor], last: bool = False
    ) -> None:
        """Evaluate `actor()` at env step `step` if an evaluation is due (or `last`)."""
        self.steps = step
        if self.settings is None or self.env is None or (step < self._next and not last):
            return
        if self.rows and self.rows[-1][0] == step:
            return
        began = time.perf_counter()
        seconds = self.seconds()
        results = rollout(self.env, actor(), self.settings.episodes, self.settings.seed)
        returns = [ep.episode_return for ep in results]
        self.rows.append(
            (
                step,
                episodes,
                statistics.fmean(returns),
                statistics.pstdev(returns),
                statistics.fmean(ep.length for ep in results),
            )
        )
        self.seconds_at.append((step, seconds))
        self._next = (step // self.settings.every + 1) * self.settings.every
        self._evaluating += time.perf_counter() - began

    def timing(self) -> dict[str, Any]:
        """The untracked timing record: training seconds, steps per second, seconds per eval."""
        seconds, steps = self.seconds(), self.steps
        if self.env is not None:
            self.env.close()
        return {
            "steps": steps,
            "train_seconds": round(seconds, 3),
            "steps_per_second": round(steps / seconds, 1) if seconds > 0 else None,
            "evals": [{"step": s, "train_seconds": round(t, 3)} for s, t in self.seconds_at],
        }
