"""The possible returns of an env's episode, where it has bounds: an interval of a mean return
is cut to them (`rlrepro.results.stats.within`).

A return is a sum of per-step rewards over at most the env's `max_episode_steps` (its
Gymnasium registration, `gymnasium.spec(env).max_episode_steps`). The per-step rewards are
Gymnasium's documented ones (each env's page, "Rewards"):
- CartPole-v1: +1 for every step, the terminating one included: returns in [0, 500];
- InvertedPendulum-v5: +1 for every step the pole is upright, 0 on the terminating step:
  [0, 1000];
- InvertedDoublePendulum-v5: `healthy_reward` (10) minus a distance and a velocity penalty,
  both >= 0 and the velocity one unbounded: at most 10 a step (at most 10,000), no lower bound.
An env not listed here has no known bounds.
"""

import gymnasium as gym

# Per env id: the lowest and highest reward of one step (None: none known).
STEP_REWARDS: dict[str, tuple[float | None, float | None]] = {
    "CartPole-v1": (1.0, 1.0),
    "InvertedPendulum-v5": (0.0, 1.0),
    "InvertedDoublePendulum-v5": (None, 10.0),
}


def return_bounds(env: str) -> tuple[float | None, float | None]:
    """The lowest and highest possible return of an episode of `env` (None: unbounded or not
    known on that side)."""
    low, high = STEP_REWARDS.get(env, (None, None))
    steps = gym.spec(env).max_episode_steps
    lowest = 0.0 if low is not None and low >= 0 else None
    highest = high * steps if high is not None and high >= 0 and steps is not None else None
    return lowest, highest
