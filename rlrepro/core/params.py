"""`params.yaml`: one declared schema, parsed into frozen, typed dataclasses, one section at a time.

Every key is declared once, here: its type (the field's annotation), its range and its meaning
(`key(...)`, the field's metadata); the hyperparameters in `HYPERPARAMS`. The same declarations
drive the checks, the one-line errors (`ParamsError`: the key, what is accepted, a short
rendering of what was found) and the keys table of docs/experiments.md (`python -m
tools.schema_doc`). Each stage reads only the sections it declares in `dvc.yaml`.

Why dataclasses with metadata rather than pydantic: the stages, tools and a checkpoint's reader
import these frozen dataclasses and build them from plain data (`build`); pydantic models would be
a second declaration of the same classes, and each `ValidationError` would have to be rendered
back into the one-line messages the project promises. The checker below is a short walk over the
annotations; strictness (a boolean is not a number, finite floats, bounded integers) is its rule.

What is refused before any work, beside types and ranges:
- names (experiments, `root`) that are not safe as a file name, a DVC stage name and a shell
  word (`NAME_RULE`, `ROOT_RULE`);
- seeds, and every seed a run derives from one (`seed + i`), outside numpy's [0, 2**32);
- resources over `resources.MEMORY_LIMIT` (a replay or rollout buffer, the networks, the envs
  built at once, the bootstrap) and an update whose gradient steps would outlast `max_days`
  (`rlrepro.core.resources`; with the env's sizes once the env is made: `check_resources`).
"""

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable, Collection, Iterable
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar

from rlrepro.core import layout, resources, yamlfile
from rlrepro.core.errors import ParamsError
from rlrepro.core.resources import ENV_BYTES, MEMORY_LIMIT, UNKNOWN_SIZES, bytes_text
from rlrepro.core.yamlfile import short

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

# Names of experiments: one rule, `layout.NAME` (a file name, a DVC stage name, a shell word).
NAME_RULE = layout.NAME
NAME_TEXT = layout.NAME_TEXT
# `root`, the code's folder from the params file's (dvc.yaml's `${root}`, unquoted in its
# commands): a path of words of NAME_RULE's characters and upper-case letters, no shell character.
ROOT_RULE = re.compile(r"[A-Za-z0-9_./-]{1,255}")
# ATen operator names (`aten::convolution`, `aten::add.Tensor`), for `allow_nonportable_ops`.
OP_RULE = re.compile(r"[a-z_][a-z0-9_]*::[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?")

# numpy's seeds (`np.random.seed`, `RandomState`) are integers in [0, 2**32): so are the seeds
# here, and every seed a run derives from one (`seed + i` for env i or episode i).
SEED_LIMIT = 2**32
# Other integers (budgets, intervals): at most 2**53, the largest every JSON reader and a float64
# column (pandas) hold exactly.
INT_LIMIT = 2**53
# The longest text value (an env id); names have their own rule.
MAX_TEXT = 200
# A mean curve's grid: a figure is a few thousand pixels wide; a million rows of CSV is plenty.
MAX_PLOT_POINTS = 1_000_000
# Bootstrap replicates per interval: 2,000 by default; its memory is checked besides.
MAX_BOOTSTRAP_SAMPLES = 10_000_000
# Training seeds: each is a train and an evaluate stage of every experiment.
MAX_SEEDS = 1000
# Hidden layers of a policy.
MAX_LAYERS = 64

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Range:
    """The numbers a key accepts: `low` and `high` (none: unbounded), each included or not."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        """Whether `value` is in the range."""
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def broken(self, value: float) -> "Range":
        """The part of the range `value` is outside of, as a message states it: the whole range
        when both ends are part of the meaning (`[0, 1]`), else the bound it crosses (an upper
        bound above 1 is a sanity limit, which only matters to a value over it)."""
        if self.low is None or self.high is None or self.high <= 1:
            return self
        if Range(self.low, None, self.low_open).holds(value):
            return Range(None, self.high, high_open=self.high_open)
        return Range(self.low, None, self.low_open)

    def text(self) -> str:
        """The range as a message says it: `>= 1`, `in [0, 1]`, `in (0, 1)`."""
        if self.low is None and self.high is None:
            return "any"
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_number(self.low or 0)}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {_number(self.high)}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{_number(self.low)}, {_number(self.high)}{right}"


def _number(value: float) -> str:
    if isinstance(value, int) and value >= 2**20 and value & (value - 1) == 0:
        return f"2**{value.bit_length() - 1}"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def spec(
    doc: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    choices: Collection[str] = (),
    what: str = "",
    envs: bool = False,
) -> dict[str, Any]:
    """A declared key's metadata (`dataclasses.field(metadata=spec(...))`): its meaning (`doc`),
    its range (numbers, list items) and the names it accepts (`choices`, `what` in messages;
    kept as given, so a table such as `ACTIVATIONS` stays the one source of its names)."""
    return {
        "doc": doc,
        "range": Range(low, high, low_open, high_open),
        "choices": choices,
        "what": what,
        "envs": envs,
    }


def _seed(doc: str) -> dict[str, Any]:
    return spec(doc, low=0, high=SEED_LIMIT, high_open=True)


def _count(doc: str, low: int = 1, high: int = INT_LIMIT) -> dict[str, Any]:
    return spec(doc, low=low, high=high)


def _envs(doc: str) -> dict[str, Any]:
    """A count of envs built at once: at most what fits `MEMORY_LIMIT` at `ENV_BYTES` each."""
    return spec(doc, low=1, high=MEMORY_LIMIT // ENV_BYTES, envs=True)


@dataclasses.dataclass(frozen=True)
class Numerics:
    """How the math libraries run (params section `numerics`)."""

    torch_threads: int = field(
        metadata=_count("torch intra-op threads; 1 keeps bytes identical across CPUs", high=1024)
    )


@dataclasses.dataclass(frozen=True)
class EnvCheck:
    """The physics digest of `env_check`: a fixed rollout of `digest_steps` from `digest_seed`."""

    digest_steps: int = field(
        metadata=_count(
            "steps of the fixed-action rollout hashed to compare this machine's physics",
            high=1_000_000,
        )
    )
    digest_seed: int = field(metadata=_seed("the rollout's reset seed"))


@dataclasses.dataclass(frozen=True)
class Tracing:
    """The training trace (params section `trace`)."""

    every: int = field(
        metadata=_count("hash the policy after every N-th update (and after the last)")
    )


@dataclasses.dataclass(frozen=True)
class Policy:
    """The policy network."""

    hidden: tuple[int, ...] = field(
        metadata=_count(f"hidden layer sizes, input side first (at most {MAX_LAYERS} layers)")
    )
    activation: str = field(
        metadata=spec(
            "the hidden layers' activation (a `torch.nn` module)",
            choices=ACTIVATIONS,
            what="activation",
        )
    )


@dataclasses.dataclass(frozen=True)
class Normalize:
    """SB3's `VecNormalize` around the training envs; its statistics go into the checkpoint."""

    obs: bool = field(
        metadata=spec("normalise observations by running statistics, also in evaluation")
    )
    reward: bool = field(
        metadata=spec("scale rewards by the running std of the discounted return (training)")
    )
    clip_obs: float = field(
        metadata=spec("clip normalised observations to +-clip_obs", low=0, low_open=True)
    )


@dataclasses.dataclass(frozen=True)
class PeriodicEval:
    """The deterministic evaluation during training, recorded in the progress curve."""

    every: int = field(
        metadata=_count("env steps between evaluations (also one at the start and the end)")
    )
    episodes: int = field(
        metadata=_envs("episodes per evaluation, one env each, all built at once")
    )
    seed: int = field(metadata=_seed("episode `i` starts from `reset(seed=seed + i)`"))

    def __post_init__(self) -> None:
        _check_seed_run(self.seed, self.episodes, "periodic_eval.seed", "episodes")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One named experiment: what to train, on what, for how long (`experiments.<name>`)."""

    env: str = field(metadata=spec("a registered Gymnasium id"))
    algo: str = field(metadata=spec("the algorithm", choices=ALGORITHMS, what="algorithm"))
    budget: dict[str, Any] = field(
        metadata=spec(
            "one unit and its amount N in [1, 2**53]: SB3 `{steps: N}`; reinforce `{episodes: N}` "
            "or `{steps: N}`"
        )
    )
    policy: Policy = field(metadata=spec("the policy network"))
    hyperparams: dict[str, Any] = field(
        metadata=spec("keyword arguments of the algorithm (below), checked against its signature")
    )
    n_envs: int = field(
        default=1,
        metadata=_envs("SB3: envs stepped side by side (seeds seed, seed + 1, ...)"),
    )
    normalize: Normalize | None = field(
        default=None, metadata=spec("SB3: `VecNormalize` settings, or none")
    )
    periodic_eval: PeriodicEval | None = field(
        default=None, metadata=spec("the evaluation during training, or none")
    )
    max_days: float = field(
        default=1.0,
        metadata=spec(
            "the longest the training may take, in days, at the speed measured in its first "
            "seconds (a typo's safeguard)",
            low=0,
            low_open=True,
            high=36525,
        ),
    )
    allow_nonportable_ops: tuple[str, ...] = field(
        default=(),
        metadata=spec(
            "ATen ops (`aten::convolution`) the experiment accepts without a portable kernel, so "
            "that its bytes may differ between machines"
        ),
    )


@dataclasses.dataclass(frozen=True)
class Resume:
    """Snapshots of a training in progress (params section `resume`, optional), from which a
    killed train stage continues. They never change a result, so no stage depends on them."""

    every: int = field(metadata=_count("env steps between snapshots"))


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The deterministic evaluation (params section `evaluate`)."""

    episodes: int = field(
        metadata=_envs("episodes per trained agent, one env each, all built at once")
    )
    seed: int = field(metadata=_seed("episode `i` starts from `env.reset(seed=seed + i)`"))

    def __post_init__(self) -> None:
        _check_seed_run(self.seed, self.episodes, "evaluate.seed", "episodes")


@dataclasses.dataclass(frozen=True)
class Plot:
    """The reports (params section `plot`)."""

    points: int = field(
        metadata=_count(
            "env-step grid points on which seed curves are averaged", 2, MAX_PLOT_POINTS
        )
    )
    window: int = field(metadata=_count("episodes in the moving average of each seed's curve"))


@dataclasses.dataclass(frozen=True)
class Stats:
    """The statistics of the reports (params section `stats`)."""

    bootstrap_samples: int = field(
        metadata=_count("bootstrap replicates per interval", 100, MAX_BOOTSTRAP_SAMPLES)
    )
    confidence: float = field(
        metadata=spec(
            "the intervals' confidence level", low=0, high=1, low_open=True, high_open=True
        )
    )
    seed: int = field(
        metadata=_seed("seeds the bootstrap's generator, so that the intervals are reproducible")
    )


# The sections of a params file that are mappings of keys, and their dataclasses.
SCHEMA: dict[str, type] = {
    "numerics": Numerics,
    "env_check": EnvCheck,
    "resume": Resume,
    "trace": Tracing,
    "evaluate": Evaluation,
    "plot": Plot,
    "stats": Stats,
}
# The sections that are no mapping of keys: (type, accepted, default, meaning).
SCALARS = {
    "root": (
        "text",
        f"`{ROOT_RULE.pattern}`",
        "`.`",
        "the code's folder from this file's (dvc.yaml's `${root}`)",
    ),
    "seeds": (
        "list of integers",
        f"distinct, each in [0, 2**32), at most {MAX_SEEDS:,}",
        "required",
        "every experiment is trained once per seed",
    ),
    "experiments": (
        "mapping",
        f"names of {NAME_TEXT} characters",
        "required",
        "the experiments by name",
    ),
}
# Every section a params file may have.
SECTIONS = (*SCALARS, *SCHEMA)


@dataclasses.dataclass(frozen=True)
class Hyper:
    """A declared hyperparameter: its `kind` (see `_HYPER_CHECKS`), range, whether null is
    accepted, and its meaning."""

    kind: str
    doc: str
    range: Range = Range()
    nullable: bool = False


_POSITIVE = Range(0, None, low_open=True)
_NON_NEGATIVE = Range(0)
_FRACTION = Range(0, 1)
_COUNT = Range(1, INT_LIMIT)
# SB3's keyword arguments (the union over its algorithms) and REINFORCE's; an algorithm's own
# list is its signature, checked by the trainer. Any other value is plain data, finite.
HYPERPARAMS: dict[str, Hyper] = {
    "learning_rate": Hyper("rate", "the optimizer's step size", _POSITIVE),
    "gamma": Hyper("number", "the discount factor", _FRACTION),
    "n_steps": Hyper("integer", "PPO, A2C: env steps per env between updates", _COUNT),
    "batch_size": Hyper("integer", "samples per gradient step", _COUNT),
    "n_epochs": Hyper("integer", "PPO: passes over each rollout per update", _COUNT),
    "gae_lambda": Hyper("number", "PPO, A2C: GAE's bias-variance trade-off", _FRACTION),
    "clip_range": Hyper("rate", "PPO: the policy's clip range", _POSITIVE),
    "clip_range_vf": Hyper("rate", "PPO: the value's clip range", _POSITIVE, nullable=True),
    "normalize_advantage": Hyper("boolean", "PPO, A2C: normalise the advantages"),
    "ent_coef": Hyper(
        "ent_coef", "the entropy coefficient (SAC: also `auto`, `auto_0.1`)", _NON_NEGATIVE
    ),
    "vf_coef": Hyper("number", "PPO, A2C: the value loss's weight", _NON_NEGATIVE),
    "max_grad_norm": Hyper("number", "the gradient norm clip", _POSITIVE),
    "use_sde": Hyper("boolean", "generalized state-dependent exploration"),
    "sde_sample_freq": Hyper(
        "integer", "gSDE: steps between noise samples (-1: per rollout)", Range(-1, INT_LIMIT)
    ),
    "target_kl": Hyper(
        "number", "PPO: stop an update's epochs over this KL", _POSITIVE, nullable=True
    ),
    "stats_window_size": Hyper("integer", "episodes in SB3's logged averages", _COUNT),
    "rms_prop_eps": Hyper("number", "A2C: RMSprop's epsilon", _POSITIVE),
    "use_rms_prop": Hyper("boolean", "A2C: RMSprop rather than Adam"),
    "buffer_size": Hyper("integer", "off-policy: transitions the replay buffer holds", _COUNT),
    "learning_starts": Hyper(
        "integer", "off-policy: env steps before the first update", Range(0, INT_LIMIT)
    ),
    "tau": Hyper(
        "number", "off-policy: the target networks' soft update", Range(0, 1, low_open=True)
    ),
    "train_freq": Hyper(
        "train_freq", "off-policy: env steps between updates, or `[n, step|episode]`", _COUNT
    ),
    "gradient_steps": Hyper(
        "integer",
        "off-policy: gradient steps per update (-1: as many as env steps)",
        Range(-1, INT_LIMIT),
    ),
    "action_noise": Hyper(
        "noise",
        "TD3, DDPG, SAC: `{normal: sigma}`, Gaussian exploration noise",
        _NON_NEGATIVE,
        nullable=True,
    ),
    "optimize_memory_usage": Hyper("boolean", "off-policy: store each observation once"),
    "target_update_interval": Hyper(
        "integer", "SAC, DQN: updates (DQN: env steps) between target updates", _COUNT
    ),
    "target_entropy": Hyper("target_entropy", "SAC: the entropy target, or `auto`"),
    "use_sde_at_warmup": Hyper("boolean", "SAC: gSDE before learning starts"),
    "policy_delay": Hyper("integer", "TD3: critic updates per actor update", _COUNT),
    "target_policy_noise": Hyper("number", "TD3: the target policy's noise", _NON_NEGATIVE),
    "target_noise_clip": Hyper("number", "TD3: its clip", _NON_NEGATIVE),
    "exploration_fraction": Hyper(
        "number", "DQN: the training share over which epsilon falls", _FRACTION
    ),
    "exploration_initial_eps": Hyper("number", "DQN: epsilon at the start", _FRACTION),
    "exploration_final_eps": Hyper("number", "DQN: epsilon at the end", _FRACTION),
    "replay_buffer_class": Hyper("null", "not settable from params (a class)"),
    "replay_buffer_kwargs": Hyper(
        "mapping", "off-policy: the replay buffer's keyword arguments", nullable=True
    ),
    "rollout_buffer_class": Hyper("null", "not settable from params (a class)"),
    "rollout_buffer_kwargs": Hyper(
        "mapping", "PPO, A2C: the rollout buffer's keyword arguments", nullable=True
    ),
    "weight_decay": Hyper("number", "REINFORCE: AdamW's decoupled weight decay", _NON_NEGATIVE),
    "std_eps": Hyper("number", "REINFORCE: added to the standard deviation, never zero", _POSITIVE),
}


def read(path: Path) -> dict[str, Any]:
    """Read params.yaml (within `yamlfile`'s limits) as a mapping of known sections.

    :raises ParamsError: one line naming the file: missing, too large, not UTF-8, not YAML
        (naming the line and column), a key twice in one mapping, an alias bomb, not a mapping,
        a section this code does not know, or a `root` that is not a plain path.
    """
    data = yamlfile.load(path)
    if not isinstance(data, dict):
        raise ParamsError(
            f"{path}: expected a mapping of sections at the top level, got {_kind(data)}"
        )
    for name in data:
        if name not in SECTIONS:
            raise ParamsError(f"{path}: {unknown_key(_label(name), SECTIONS)}")
    if "root" in data:
        root = data["root"]
        if not isinstance(root, str) or not ROOT_RULE.fullmatch(root):
            raise ParamsError(
                f"{path}: root: expected a path of letters, digits, `_`, `.`, `/`, `-` (at most "
                f"255), got {short(root)}"
            )
    return data


def unknown_key(key: str, accepted: Iterable[str], what: str = "key") -> str:
    """`<key>: unknown <what>; did you mean `<closest>`? accepted: ...`, for an error message."""
    choices = sorted(accepted)
    close = difflib.get_close_matches(key, choices, n=1) if len(key) <= MAX_TEXT else []
    hint = f"did you mean `{close[0]}`? " if close else ""
    return f"{key}: unknown {what}; {hint}accepted: {', '.join(choices)}"


def section(raw: dict[str, Any], cls: type[T], key: str) -> T:
    """Build dataclass `cls` from `raw[key]`, naming `key` in any error (and, for `stats`, its
    memory with the number of seeds)."""
    result = build(cls, _get(raw, key, key), key)
    if isinstance(result, Stats):
        _check_stats_memory(result, raw)
    return result


def section_names(raw: dict[str, Any], key: str) -> list[str]:
    """The names in mapping section `key` (e.g. the experiments), in file order, each checked
    against `NAME_RULE`."""
    value = _get(raw, key, key)
    if not isinstance(value, dict) or not value:
        raise ParamsError(
            f"{key}: expected a non-empty mapping of named entries, got {short(value)}"
        )
    for name in value:
        check_name(name, f"{key}.{_label(name)}")
    return list(value)


def check_name(name: Any, where: str) -> str:
    """`name` when it is a name (`layout.NAME`). :raises ParamsError: naming `where`."""
    return layout.check_name(name, where)


def experiment(raw: dict[str, Any], name: str) -> Experiment:
    """The experiment `name`, validated: its name, the declared keys, its env id, budget and
    hyperparameters, and the resources it needs as far as known without its env."""
    experiments = _get(raw, "experiments", "experiments")
    label = _label(name)
    if not isinstance(experiments, dict) or name not in experiments:
        known = sorted(map(_label, experiments))[:20] if isinstance(experiments, dict) else []
        raise ParamsError(
            f"experiments.{label}: no such experiment; defined: {', '.join(known) or 'none'}"
        )
    where = f"experiments.{label}"
    check_name(name, where)
    exp = build(Experiment, experiments[name], where)
    _check_env_id(exp.env, f"{where}.env")
    _check_budget(exp, where)
    for op_index, op in enumerate(exp.allow_nonportable_ops):
        if not OP_RULE.fullmatch(op):
            raise ParamsError(
                f"{where}.allow_nonportable_ops[{op_index}]: expected an ATen op name such as "
                f"aten::convolution, got {short(op)}"
            )
    _check_hyperparams(exp.hyperparams, f"{where}.hyperparams")
    if exp.algo == "reinforce" and (exp.n_envs != 1 or exp.normalize is not None):
        raise ParamsError(f"{where}: reinforce runs one env, unnormalised; drop n_envs, normalize")
    if len(exp.policy.hidden) > MAX_LAYERS:
        raise ParamsError(
            f"{where}.policy.hidden: expected at most {MAX_LAYERS} layers, "
            f"got {len(exp.policy.hidden)}"
        )
    if isinstance(raw.get("seeds"), list):
        top = max((s for s in raw["seeds"] if type(s) is int), default=0)
        _check_seed_run(top, exp.n_envs, "seeds", f"{where}.n_envs")
    check_resources(exp, name, UNKNOWN_SIZES)
    return exp


def seeds(raw: dict[str, Any]) -> tuple[int, ...]:
    """The training seeds, a non-empty list of distinct integers in [0, 2**32)."""
    value = _get(raw, "seeds", "seeds")
    if not isinstance(value, list) or not value:
        raise ParamsError(
            f"seeds: expected a non-empty list of distinct integers, got {short(value)}"
        )
    if len(value) > MAX_SEEDS:
        raise ParamsError(f"seeds: expected at most {MAX_SEEDS:,} seeds, got {len(value):,}")
    seed_range = Range(0, SEED_LIMIT, high_open=True)
    result = tuple(_integer(v, f"seeds[{i}]", seed_range) for i, v in enumerate(value))
    if len(set(result)) != len(result):
        raise ParamsError(
            f"seeds: expected a non-empty list of distinct integers, got {short(value)}"
        )
    return result


def _get(raw: dict[str, Any], key: str, where: str) -> Any:
    if key not in raw:
        raise ParamsError(f"{where}: missing key")
    return raw[key]


def _label(name: Any) -> str:
    """A key as a message shows it: itself when plain, else its short rendering."""
    if isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
        return name
    return short(name)


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}: {short(value)}"


def build(cls: type[T], data: Any, where: str) -> T:
    """Build the dataclass `cls` from mapping `data`; fields without a default are required,
    extra keys are not allowed; each value is checked against the field's type and metadata
    (`spec`'s, or `{"min": n}` for integers at least n)."""
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a mapping, got {short(data)}")
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields, key=str)
    if unknown:
        raise ParamsError(f"{where}.{unknown_key(_label(unknown[0]), fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for declared in dataclasses.fields(cls):  # type: ignore[arg-type]
        key_path = f"{where}.{declared.name}"
        if declared.name not in data and declared.default is not dataclasses.MISSING:
            values[declared.name] = declared.default
            continue
        meta = declared.metadata
        accepted = meta.get("range") or Range(meta.get("min", 0))
        _check_envs_at_once(data.get(declared.name), meta, key_path)
        value = _coerce(
            _get(data, declared.name, key_path), hints[declared.name], key_path, accepted
        )
        if meta.get("choices") and value not in meta["choices"]:
            raise ParamsError(
                f"{key_path}: unknown {meta['what']} {short(value)}; accepted: "
                f"{', '.join(meta['choices'])}"
            )
        values[declared.name] = value
    try:
        return cls(**values)
    except ParamsError as err:  # a check of the whole section, which names its own keys
        raise ParamsError(f"{where.rpartition('.')[0]}.{err}".lstrip(".")) from None


def _check_envs_at_once(value: Any, meta: Any, where: str) -> None:
    """A count of envs built at once (`spec(envs=True)`) over its bound, with its memory."""
    bound = meta.get("range")
    if meta.get("envs") and type(value) is int and bound.high is not None and value > bound.high:
        raise ParamsError(
            f"{where}: {value:,} envs built at once need about {bytes_text(value * ENV_BYTES)} "
            f"at {bytes_text(ENV_BYTES)} each, over the {bytes_text(MEMORY_LIMIT)} a stage may "
            f"use; expected an integer <= {bound.high:,}"
        )


def _coerce(value: Any, hint: Any, where: str, accepted: Range) -> Any:
    """Check `value` against type `hint`: numbers (and each item of a tuple) in `accepted`, a
    float takes an int, a boolean is not a number, floats are finite."""
    origin = typing.get_origin(hint)
    if origin is types.UnionType:  # `X | None`: none, or an X
        (inner,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
        return None if value is None else _coerce(value, inner, where, accepted)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)  # type: ignore[arg-type]
    if hint is Any:
        return value
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if not isinstance(value, list) or (not value and item is not str):
            raise ParamsError(f"{where}: expected a non-empty list, got {short(value)}")
        return tuple(_coerce(v, item, f"{where}[{i}]", accepted) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {short(value)}")
        for name in value:
            if not isinstance(name, str) or not name:
                raise ParamsError(f"{where}: expected names as keys, got {short(name)}")
        value_hint = typing.get_args(hint)[1]
        return {
            k: _coerce(v, value_hint, f"{where}.{_label(k)}", accepted)
            for k, v in sorted(value.items())
        }
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true or false, got {short(value)}")
        return value
    if hint is int:
        return _integer(value, where, accepted)
    if hint is float:
        return _float(value, where, accepted)
    if hint is str:
        if not isinstance(value, str) or not value:
            raise ParamsError(f"{where}: expected a non-empty string, got {short(value)}")
        if len(value) > MAX_TEXT:
            raise ParamsError(
                f"{where}: expected at most {MAX_TEXT} characters, got {short(value)}"
            )
        return value
    raise TypeError(f"{where}: unsupported type {hint!r}")


def _integer(value: Any, where: str, accepted: Range) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        low = Range(accepted.low, None, accepted.low_open)
        text = f"an integer {low.text()}" if accepted.low is not None else "an integer"
        raise ParamsError(f"{where}: expected {text}, got {short(value)}{_text_hint(value)}")
    if not accepted.holds(value):
        bound = accepted.broken(value).text()
        raise ParamsError(f"{where}: expected an integer {bound}, got {short(value)}")
    return value


def _float(value: Any, where: str, accepted: Range) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParamsError(f"{where}: expected a number, got {short(value)}{_text_hint(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamsError(f"{where}: expected a finite number, got {short(value)}")
    if isinstance(value, int) and abs(value) > INT_LIMIT:
        raise ParamsError(f"{where}: expected a number of at most 2**53, got {short(value)}")
    if not accepted.holds(value):
        bound = accepted.broken(value).text()
        raise ParamsError(f"{where}: expected a number {bound}, got {short(value)}")
    return float(value)


def _text_hint(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"[-+]?[0-9.]+e[-+]?[0-9]+", value.lower()):
        return " (YAML reads 1e-4 as text: write 1.0e-4)"
    return ""


def _check_seed_run(seed: int, count: int, where: str, count_key: str) -> None:
    """Seeds `seed` to `seed + count - 1` all below `SEED_LIMIT`."""
    if seed + count - 1 >= SEED_LIMIT:
        raise ParamsError(
            f"{where}: {seed:,} + {count_key} - 1 = {seed + count - 1:,}, over the largest seed "
            f"2**32 - 1; lower the seed"
        )


def _check_env_id(env_id: str, where: str) -> None:
    import gymnasium as gym

    if env_id not in gym.registry:
        raise ParamsError(
            f"{where}: unknown env id {short(env_id)}; accepted: a registered Gymnasium id, "
            "e.g. CartPole-v1, InvertedPendulum-v5, InvertedDoublePendulum-v5"
        )


def _check_budget(exp: Experiment, where: str) -> None:
    units = BUDGET_UNITS[exp.algo]
    if len(exp.budget) != 1 or next(iter(exp.budget)) not in units:
        raise ParamsError(
            f"{where}.budget: expected exactly one of {', '.join(units)} for {exp.algo}, "
            f"got {short(exp.budget)}"
        )
    ((unit, amount),) = exp.budget.items()
    _integer(amount, f"{where}.budget.{unit}", _COUNT)


def _check_hyperparams(hyperparams: dict[str, Any], where: str) -> None:
    """Each declared hyperparameter against its `Hyper`; any other value as plain data."""
    for name, value in hyperparams.items():
        path = f"{where}.{name}"
        declared = HYPERPARAMS.get(name)
        if declared is None:
            _plain(value, path, 1)
        elif value is None:
            if not declared.nullable and declared.kind != "null":
                raise ParamsError(f"{path}: expected {KIND_TEXT[declared.kind]}, got None")
        else:
            _HYPER_CHECKS[declared.kind](value, path, declared.range)


def _plain(value: Any, where: str, depth: int) -> None:
    """Plain data an algorithm may take: null, booleans, bounded integers, finite numbers, short
    text, and lists and mappings of those (a few levels deep)."""
    if depth > 4:
        raise ParamsError(f"{where}: nested too deep for a hyperparameter")
    if isinstance(value, list):
        for i, item in enumerate(value):
            _plain(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise ParamsError(f"{where}: expected names as keys, got {short(name)}")
            _plain(item, f"{where}.{_label(name)}", depth + 1)
    elif isinstance(value, float):
        _float(value, where, Range())
    elif isinstance(value, int) and not isinstance(value, bool):
        _integer(value, where, Range(-INT_LIMIT, INT_LIMIT))
    elif isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ParamsError(
                f"{where}: expected at most {MAX_TEXT} characters, got {short(value)}"
            )
    elif value is not None and not isinstance(value, bool):
        raise ParamsError(f"{where}: expected a number, text, true or false, got {short(value)}")


def _rate(value: Any, where: str, accepted: Range) -> None:
    if not isinstance(value, dict):
        _float(value, where, accepted)
        return
    if sorted(map(str, value)) != ["end", "schedule", "start"] or value["schedule"] != "linear":
        raise ParamsError(
            f"{where}: expected a number or "
            f"{{schedule: linear, start: <number>, end: <number>}}, got {short(value)}"
        )
    _float(value["start"], f"{where}.start", accepted)
    if value["end"] != 0 or isinstance(value["end"], bool):  # a schedule may decay to 0
        _float(value["end"], f"{where}.end", accepted)


def _ent_coef(value: Any, where: str, accepted: Range) -> None:
    if isinstance(value, str):
        if not re.fullmatch(r"auto(_[0-9]+(\.[0-9]+)?)?", value):
            raise ParamsError(
                f"{where}: expected a number, `auto` or `auto_<number>`, got {short(value)}"
            )
        return
    _float(value, where, accepted)


def _target_entropy(value: Any, where: str, accepted: Range) -> None:
    if value != "auto":
        _float(value, where, accepted)


def _noise(value: Any, where: str, accepted: Range) -> None:
    if not isinstance(value, dict) or sorted(map(str, value)) != ["normal"]:
        raise ParamsError(f"{where}: expected {{normal: <sigma>}}, got {short(value)}")
    _float(value["normal"], f"{where}.normal", accepted)


def _train_freq(value: Any, where: str, accepted: Range) -> None:
    if isinstance(value, list):
        if len(value) != 2 or value[1] not in ("step", "episode"):
            raise ParamsError(
                f"{where}: expected an integer or [<n>, step|episode], got {short(value)}"
            )
        _integer(value[0], f"{where}[0]", accepted)
        return
    _integer(value, where, accepted)


def _null(value: Any, where: str, accepted: Range) -> None:  # noqa: ARG001
    raise ParamsError(f"{where}: not settable from params (a class), got {short(value)}")


def _mapping(value: Any, where: str, accepted: Range) -> None:  # noqa: ARG001
    if not isinstance(value, dict):
        raise ParamsError(f"{where}: expected a mapping, got {short(value)}")
    _plain(value, where, 1)


_HYPER_CHECKS: dict[str, Callable[[Any, str, Range], object]] = {
    "number": _float,
    "integer": _integer,
    "boolean": lambda value, where, _: _coerce(value, bool, where, Range()),
    "rate": _rate,
    "ent_coef": _ent_coef,
    "target_entropy": _target_entropy,
    "noise": _noise,
    "train_freq": _train_freq,
    "null": _null,
    "mapping": _mapping,
}
# How a message and the docs name each kind of hyperparameter.
KIND_TEXT = {
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "rate": "a number or {schedule: linear, start: <number>, end: <number>}",
    "ent_coef": "a number, `auto` or `auto_<number>`",
    "target_entropy": "a number or `auto`",
    "noise": "{normal: <sigma>}",
    "train_freq": "an integer or [<n>, step|episode]",
    "null": "null",
    "mapping": "a mapping",
}


def check_resources(exp: Experiment, name: str, sizes: resources.Sizes) -> None:
    """`resources.check` for experiment `name` (`exp`), whose env has `sizes`."""
    resources.check(exp, f"experiments.{_label(name)}", sizes)


def _check_stats_memory(stats: Stats, raw: dict[str, Any]) -> None:
    """`resources.check_bootstrap` of `stats` over the seeds of `raw` (when they are a list)."""
    runs = len(raw["seeds"]) if isinstance(raw.get("seeds"), list) else 1
    resources.check_bootstrap(stats.bootstrap_samples, runs, "stats.bootstrap_samples")
