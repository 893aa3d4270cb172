"""What a training records besides the agent: the learning curve, the training trace, the
deterministic evaluations during training (the progress curve), and the training clock.

The curve, trace and progress rows are tracked outputs (the same bytes on every run). The clock's
seconds, which exclude the time spent evaluating, go to an untracked timing file.
"""

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from rlrepro.agents.rollout import Actor, Episode, rollout, summary
from rlrepro.core.params import PeriodicEval
from rlrepro.training.trace import Trace

PROGRESS_HEADER = ("step", "episodes", "eval_return_mean", "eval_return_std", "eval_length_mean")


class Recording:
    """The record of one training run.

    :param env_id: the env to evaluate on (instances of its own, apart from the training envs).
    :param periodic: when and how long to evaluate; none: never.
    :param trace_every: hash the policy after every `trace_every`-th update.
    """

    def __init__(self, env_id: str, periodic: PeriodicEval | None, trace_every: int) -> None:
        self.periodic = periodic
        count = periodic.episodes if periodic else 0
        self.envs: list[gym.Env[Any, Any]] = [gym.make(env_id) for _ in range(count)]
        self.episodes: list[Episode] = []
        self.trace = Trace(trace_every)
        self.progress_rows: list[tuple[int, int, float, float, float]] = []
        self.steps = 0  # the last env step it was told of
        self._next_eval = 0
        self._start = time.perf_counter()
        self._evaluating = 0.0
        self._seconds_at: list[tuple[int, float]] = []

    def seconds(self) -> float:
        """Wall-clock seconds of training so far, without the time spent evaluating."""
        return time.perf_counter() - self._start - self._evaluating

    def episode(self, episode: Episode) -> None:
        """Add a finished training episode to the learning curve."""
        self.episodes.append(episode)

    def evaluate(self, step: int, actor: Callable[[], Actor], last: bool = False) -> None:
        """Note env step `step`, and evaluate `actor()` there when an evaluation is due (or
        `last`)."""
        self.steps = step
        if self.periodic is None or (step < self._next_eval and not last):
            return
        if self.progress_rows and self.progress_rows[-1][0] == step:
            return
        began, seconds = time.perf_counter(), self.seconds()
        result = summary(rollout(self.envs, actor(), self.periodic.episodes, self.periodic.seed))
        self.progress_rows.append(
            (
                step,
                len(self.episodes),
                result["return_mean"],
                result["return_std"],
                result["length_mean"],
            )
        )
        self._seconds_at.append((step, seconds))
        self._next_eval = (step // self.periodic.every + 1) * self.periodic.every
        self._evaluating += time.perf_counter() - began

    def __getstate__(self) -> dict[str, Any]:
        """For a snapshot: the clock as seconds so far, not this process's counter, and the
        episodes as plain tuples, which pickle several times faster than named ones."""
        state = dict(self.__dict__)
        state["_start"] = time.perf_counter() - self._start  # elapsed, evaluation included
        state["episodes"] = [tuple(episode) for episode in self.episodes]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """From a snapshot: the clock goes on from the seconds it had."""
        self.__dict__.update(state)
        self._start = time.perf_counter() - state["_start"]
        self.episodes = [Episode(*episode) for episode in state["episodes"]]

    def timing(self) -> dict[str, Any]:
        """The untracked timing record: training seconds, steps per second, seconds per eval."""
        seconds, steps = self.seconds(), self.steps
        return {
            "steps": steps,
            "train_seconds": round(seconds, 3),
            "steps_per_second": round(steps / seconds, 1) if seconds > 0 else None,
            "evals": [{"step": s, "train_seconds": round(t, 3)} for s, t in self._seconds_at],
        }

    def close(self) -> None:
        """Close the evaluation envs."""
        for env in self.envs:
            env.close()
