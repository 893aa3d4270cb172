"""`params.yaml`, parsed into frozen, typed dataclasses, one section at a time.

Each stage reads only the sections it declares in `dvc.yaml`. A missing, unknown or ill-typed
key raises `ParamsError` with a one-line message that names the key and what is accepted. The
names params may use (algorithms, activations, budget units) are defined here, once.
"""

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rlrepro.core.errors import ParamsError

# Stable-Baselines3's algorithms by name: the class is `stable_baselines3.<NAME>`.
SB3_ALGORITHMS = ("ppo", "a2c", "sac", "td3", "ddpg", "dqn")
ALGORITHMS = ("reinforce", *SB3_ALGORITHMS)
# Activation names and their `torch.nn` module classes.
ACTIVATIONS = {
    "tanh": "Tanh",
    "relu": "ReLU",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "sigmoid": "Sigmoid",
}
BUDGET_UNITS = {"reinforce": ("episodes", "steps"), **{a: ("steps",) for a in SB3_ALGORITHMS}}
# The sections of a params file (`root`: where the code is, for dvc.yaml's `${root}`).
SECTIONS = (
    "root",
    "numerics",
    "env_check",
    "resume",
    "trace",
    "seeds",
    "evaluate",
    "plot",
    "stats",
    "experiments",
)
# What each hyperparameter means bounds its value, whatever the algorithm (SB3's names; ours for
# REINFORCE): (low, high, whether each bound is included). Integers are bounded by their type.
_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    **dict.fromkeys(("gamma", "gae_lambda"), (0.0, 1.0, True, True)),
    **dict.fromkeys(
        ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps"),
        (0.0, 1.0, True, True),
    ),
    "tau": (0.0, 1.0, False, True),
    **dict.fromkeys(
        ("learning_rate", "clip_range", "clip_range_vf", "max_grad_norm", "target_kl", "std_eps"),
        (0.0, float("inf"), False, False),
    ),
    **dict.fromkeys(
        ("ent_coef", "vf_coef", "weight_decay", "target_policy_noise", "target_noise_clip"),
        (0.0, float("inf"), True, False),
    ),
    **dict.fromkeys(
        ("n_steps", "batch_size", "n_epochs", "buffer_size", "policy_delay"),
        (1, float("inf"), True, False),
    ),
    "target_update_interval": (1, float("inf"), True, False),
    "learning_starts": (0, float("inf"), True, False),
}

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Numerics:
    """How the math libraries run.

    :param torch_threads: torch intra-op threads; 1 is what makes bytes match across CPUs.
    """

    torch_threads: int = dataclasses.field(metadata={"min": 1})


@dataclasses.dataclass(frozen=True)
class EnvCheck:
    """The physics digest of `env_check`: a fixed rollout of `digest_steps` from `digest_seed`."""

    digest_steps: int = dataclasses.field(metadata={"min": 1})
    digest_seed: int


@dataclasses.dataclass(frozen=True)
class Tracing:
    """The training trace.

    :param every: hash the policy after every `every`-th update (and after the last).
    """

    every: int = dataclasses.field(metadata={"min": 1})


@dataclasses.dataclass(frozen=True)
class Policy:
    """The policy network.

    :param hidden: hidden layer sizes, input side first.
    :param activation: a name in `ACTIVATIONS`.
    """

    hidden: tuple[int, ...] = dataclasses.field(metadata={"min": 1})
    activation: str


@dataclasses.dataclass(frozen=True)
class Normalize:
    """SB3's `VecNormalize` around the training envs; its statistics go into the checkpoint.

    :param obs: normalise observations (running mean and variance), also in evaluation.
    :param reward: scale rewards by the running std of the discounted return (training only).
    :param clip_obs: clip normalised observations to +-clip_obs.
    """

    obs: bool
    reward: bool
    clip_obs: float

    def __post_init__(self) -> None:
        if not self.clip_obs > 0:
            raise ParamsError(f"normalize.clip_obs: expected a number > 0, got {self.clip_obs}")


@dataclasses.dataclass(frozen=True)
class PeriodicEval:
    """The deterministic evaluation during training, recorded in the progress curve.

    :param every: env steps between evaluations (also one at the start and one at the end).
    :param episodes: episodes per evaluation; episode `i` starts from `reset(seed=seed + i)`.
    :param seed: the first episode's reset seed.
    """

    every: int = dataclasses.field(metadata={"min": 1})
    episodes: int = dataclasses.field(metadata={"min": 1})
    seed: int


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One named experiment: what to train, on what, for how long.

    :param env: a registered Gymnasium id.
    :param algo: one of `ALGORITHMS`.
    :param budget: one unit from `BUDGET_UNITS[algo]` and its amount, e.g. `{"steps": 10000}`.
    :param policy: the policy network.
    :param hyperparams: keyword arguments of the algorithm, checked by the trainer; a learning
        rate or clip range may be a schedule, `{schedule: linear, start: 3.0e-4, end: 0.0}`.
    :param n_envs: SB3 algorithms: envs stepped side by side (seeds seed, seed + 1, ...).
    :param normalize: SB3 algorithms: `VecNormalize` settings, or none.
    :param periodic_eval: the evaluation during training, or none.
    :param max_days: the longest the training may take, in days at the speed measured in its
        first seconds; a budget that would take longer is refused (a typo's safeguard).
    :param allow_nonportable_ops: ATen ops (`aten::convolution`) outside the portable op set
        (`rlrepro.numerics.ops`) that this experiment's training may use, its bytes then
        differing between machines; any other is refused before training.
    """

    env: str
    algo: str
    budget: dict[str, Any]
    policy: Policy
    hyperparams: dict[str, Any]
    n_envs: int = dataclasses.field(default=1, metadata={"min": 1})
    normalize: Normalize | None = None
    periodic_eval: PeriodicEval | None = None
    max_days: float = 1.0
    allow_nonportable_ops: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Resume:
    """Snapshots of a training in progress (params section `resume`), from which a killed train
    stage continues. They never change a result, so they are not a dep of any stage.

    :param every: env steps between snapshots.
    """

    every: int = dataclasses.field(metadata={"min": 1})


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The deterministic evaluation.

    :param episodes: how many episodes per trained agent.
    :param seed: episode `i` starts from `env.reset(seed=seed + i)`.
    """

    episodes: int = dataclasses.field(metadata={"min": 1})
    seed: int


@dataclasses.dataclass(frozen=True)
class Plot:
    """The reports.

    :param points: env-step grid points on which seed curves are averaged.
    :param window: episodes in the moving average of each seed's curve.
    """

    points: int = dataclasses.field(metadata={"min": 2})
    window: int = dataclasses.field(metadata={"min": 1})


@dataclasses.dataclass(frozen=True)
class Stats:
    """The statistics of the reports (params section `stats`).

    :param bootstrap_samples: bootstrap replicates per interval.
    :param confidence: the intervals' confidence level, in (0, 1).
    :param seed: seeds the bootstrap's generator, so that the intervals are reproducible.
    """

    bootstrap_samples: int = dataclasses.field(metadata={"min": 100})
    confidence: float
    seed: int

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence < 1.0:
            raise ParamsError(
                f"stats.confidence: expected a number in (0, 1), got {self.confidence}"
            )


def read(path: Path) -> dict[str, Any]:
    """Read params.yaml as a mapping of known sections.

    :raises ParamsError: when it is missing, not YAML (naming the line and column), has a key
        twice in one mapping, is not a mapping, or has a section this code does not know.
    """
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(filter(None, (err.context, err.problem)))
        raise ParamsError(f"{where}: not valid YAML: {what}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    for key in data:
        if key not in SECTIONS:
            raise ParamsError(f"{path}: {unknown_key(str(key), SECTIONS)}")
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} written twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def unknown_key(key: str, accepted: typing.Iterable[str], what: str = "key") -> str:
    """`<key>: unknown <what>; did you mean `<closest>`? accepted: ...`, for an error message."""
    choices = sorted(accepted)
    close = difflib.get_close_matches(key, choices, n=1)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return f"{key}: unknown {what}; {hint}accepted: {', '.join(choices)}"


def section(raw: dict[str, Any], cls: type[T], key: str) -> T:
    """Build dataclass `cls` from `raw[key]`, naming `key` in any error."""
    return build(cls, _get(raw, key, key), key)


def section_names(raw: dict[str, Any], key: str) -> list[str]:
    """The names in mapping section `key` (e.g. the experiments), in file order."""
    value = _get(raw, key, key)
    if not isinstance(value, dict) or not value:
        raise ParamsError(f"{key}: expected a non-empty mapping of named entries, got {value!r}")
    return list(value)


def experiment(raw: dict[str, Any], name: str) -> Experiment:
    """The experiment `name`, validated: known algorithm, env id, activation and budget unit."""
    experiments = _get(raw, "experiments", "experiments")
    if not isinstance(experiments, dict) or name not in experiments:
        known = ", ".join(sorted(experiments)) if isinstance(experiments, dict) else "none"
        raise ParamsError(f"experiments.{name}: no such experiment; defined: {known}")
    where = f"experiments.{name}"
    exp = build(Experiment, experiments[name], where)
    _check_choice(exp.algo, ALGORITHMS, f"{where}.algo", "algorithm")
    _check_choice(
        exp.policy.activation, tuple(ACTIVATIONS), f"{where}.policy.activation", "activation"
    )
    _check_env_id(exp.env, f"{where}.env")
    _check_budget(exp, where)
    for key, value in exp.hyperparams.items():
        _check_range(key, value, f"{where}.hyperparams.{key}")
    if exp.max_days <= 0:
        raise ParamsError(f"{where}.max_days: expected a number > 0, got {exp.max_days}")
    if exp.algo == "reinforce" and (exp.n_envs != 1 or exp.normalize is not None):
        raise ParamsError(f"{where}: reinforce runs one env, unnormalised; drop n_envs, normalize")
    return exp


def seeds(raw: dict[str, Any]) -> tuple[int, ...]:
    """The training seeds, a non-empty list of distinct non-negative integers."""
    value = _get(raw, "seeds", "seeds")
    if not isinstance(value, list) or not value:
        raise ParamsError(f"seeds: expected a non-empty list of distinct integers, got {value!r}")
    result = tuple(_coerce(v, int, f"seeds[{i}]") for i, v in enumerate(value))
    if len(set(result)) != len(result):
        raise ParamsError(f"seeds: expected a non-empty list of distinct integers, got {value!r}")
    return result


def _get(raw: dict[str, Any], key: str, where: str) -> Any:
    if key not in raw:
        raise ParamsError(f"{where}: missing key")
    return raw[key]


def build(cls: type[T], data: Any, where: str) -> T:
    """Build the dataclass `cls` from mapping `data`; fields without a default are required,
    extra keys are not allowed."""
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a mapping, got {data!r}")
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields, key=str)
    if unknown:
        raise ParamsError(f"{where}.{unknown_key(str(unknown[0]), fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f"{where}.{field.name}"
        if field.name not in data and field.default is not dataclasses.MISSING:
            values[field.name] = field.default
            continue
        minimum = field.metadata.get("min", 0)
        values[field.name] = _coerce(_get(data, field.name, key), hints[field.name], key, minimum)
    try:
        return cls(**values)
    except ParamsError as err:  # a check of the whole section, which names its own keys
        raise ParamsError(f"{where.rpartition('.')[0]}.{err}".lstrip(".")) from None


def _coerce(value: Any, hint: Any, where: str, minimum: int = 0) -> Any:
    """Check `value` against type `hint`; ints (of a tuple too) are at least `minimum`, a float
    takes an int."""
    origin = typing.get_origin(hint)
    if origin is types.UnionType:  # `X | None`: none, or an X
        (inner,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
        return None if value is None else _coerce(value, inner, where, minimum)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)  # type: ignore[arg-type]
    if hint is Any:
        return value
    if origin is tuple:
        if not isinstance(value, list) or not value:
            raise ParamsError(f"{where}: expected a non-empty list, got {value!r}")
        return tuple(
            _coerce(v, typing.get_args(hint)[0], f"{where}[{i}]", minimum)
            for i, v in enumerate(value)
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        value_hint = typing.get_args(hint)[1]
        return {k: _coerce(v, value_hint, f"{where}.{k}") for k, v in sorted(value.items())}
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ParamsError(f"{where}: expected an integer >= {minimum}, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            extra = " (YAML reads 1e-4 as text: write 1.0e-4)" if isinstance(value, str) else ""
            raise ParamsError(f"{where}: expected a number, got {value!r}{extra}")
        return float(value)
    if hint is str:
        if not isinstance(value, str) or not value:
            raise ParamsError(f"{where}: expected a non-empty string, got {value!r}")
        return value
    raise TypeError(f"{where}: unsupported type {hint!r}")


def _check_choice(value: str, accepted: tuple[str, ...], where: str, what: str) -> None:
    if value not in accepted:
        raise ParamsError(f"{where}: unknown {what} {value!r}; accepted: {', '.join(accepted)}")


def _check_env_id(env_id: str, where: str) -> None:
    import gymnasium as gym

    if env_id not in gym.registry:
        raise ParamsError(
            f"{where}: unknown env id {env_id!r}; accepted: a registered Gymnasium id, "
            "e.g. CartPole-v1, InvertedPendulum-v5, InvertedDoublePendulum-v5"
        )


def _check_budget(exp: Experiment, where: str) -> None:
    units = BUDGET_UNITS[exp.algo]
    if len(exp.budget) != 1 or next(iter(exp.budget)) not in units:
        raise ParamsError(
            f"{where}.budget: expected exactly one of {', '.join(units)} for {exp.algo}, "
            f"got {exp.budget!r}"
        )
    ((unit, amount),) = exp.budget.items()
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise ParamsError(f"{where}.budget.{unit}: expected an integer >= 1, got {amount!r}")


def _check_range(key: str, value: Any, where: str) -> None:
    """A hyperparameter's number, or each end of its linear schedule, within `_RANGES[key]`."""
    if key not in _RANGES:
        return
    if isinstance(value, dict) and "start" in value and "end" in value:
        _check_range(key, value["start"], f"{where}.start")
        if value["end"] != 0:  # a schedule may decay to 0
            _check_range(key, value["end"], f"{where}.end")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        return  # not a number (e.g. SAC's `ent_coef: auto`): SB3 checks it
    low, high, low_in, high_in = _RANGES[key]
    if (value >= low if low_in else value > low) and (value <= high if high_in else value < high):
        return
    if high == float("inf"):
        relation = ">=" if low_in else ">"
        raise ParamsError(f"{where}: expected a number {relation} {low:g}, got {value}")
    interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
    raise ParamsError(f"{where}: expected a number in {interval}, got {value}")
