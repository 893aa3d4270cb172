"""Snapshots of a training in progress: a killed or stopped train stage resumes from its last
snapshot and ends with the same bytes as a run that was never stopped.

A snapshot is one pickle of everything the rest of the run depends on: the agent (networks,
optimizers, rollout or replay buffer, counters, schedule progress), every env with its full
state, `VecNormalize` with its running `returns`, the recording so far, and the global RNGs of
Python, numpy and torch. It is written every `resume.every` env steps, at the top of the
training loop (between an update and the next rollout), and at the next top after SIGTERM or
SIGINT when it comes within `GRACE_SECONDS` (`stop_on_signals`; else the run stops without one:
the last snapshot stays whole).

Pickle needs help in four places, given by `_Pickler`:
- A Gymnasium MuJoCo env pickles as its constructor's arguments (`EzPickle`), which would lose
  the simulation: it is rebuilt from them, then its attributes and MuJoCo's integration state
  (`mj_getState` with `mjSTATE_INTEGRATION`, which includes `qacc_warmstart`) are set.
- `VecNormalize` drops its wrapped env and `returns` when pickled: both are kept.
- A replay buffer that is not full keeps only its filled rows (the rest are zeros).
- A numpy dtype unpickles as a copy, but SB3's checkpoint pickles the action space, whose
  bytes depend on whether its dtype is numpy's own (shared with its scalars): it stays so.

A snapshot is this machine's scratch file: it lives in `snapshots/` (ignored by git and DVC),
is never pushed or shared, and is loaded only when its key matches. The key hashes everything
that shapes the run (the experiment's params, seed, trace and numerics settings, every file of
the train stage's code deps in `dvc.yaml`, compiled kernels' sources included, and the installed
packages' versions), so a snapshot of another run, of older code or of other packages is never
used.
Written atomically (a temporary file, fsync, rename), it is either whole or absent; a run that
finishes removes it.
"""

import dataclasses
import hashlib
import inspect
import io
import os
import pickle
import random
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import VecNormalize

from rlrepro.core import faults, requirements
from rlrepro.core.errors import StageError, StoppedError
from rlrepro.core.files import canonical_json, writing

if TYPE_CHECKING:
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

FOLDER = Path("snapshots")  # relative to the stage's folder; untracked
_MUJOCO_ENV = "gymnasium.envs.mujoco.mujoco_env"
_MUJOCO_ATTRS = ("model", "data", "mujoco_renderer")


GRACE_SECONDS = 5.0  # after a stop signal, how long a training with snapshots waits for its top


@dataclasses.dataclass
class _Stop:
    """What the stop-signal handlers know: the signal that arrived, whether a snapshot is wanted
    at the next top of the training loop (`resume`), whether one is being written, and what to
    name in the one-line message."""

    signum: int | None = None
    waits: bool = False
    saving: bool = False
    label: str = "training"
    snapshot: Path | None = None


_stop = _Stop()


def _stopped(signum: int, why: str) -> StoppedError:
    """The `StoppedError` of a training stopped by `signum` without a new snapshot: `why`
    says where; the message says what a rerun does."""
    name = signal.Signals(signum).name
    if _stop.snapshot is None:
        after = "nothing was written (params have no `resume` section): a rerun starts over"
    elif _stop.snapshot.is_file():
        after = f"the last snapshot {_stop.snapshot} stays: rerun `dvc repro` to resume from it"
    else:
        after = "no snapshot was due yet: a rerun starts over"
    where = f" {why}" if why else ""
    return StoppedError(f"{_stop.label}: stopped by {name}{where}; {after}", signum)


# A snapshot's first line: the run's key and the body's sha256, in hex, and a space and a newline.
_HEADER_LIMIT = 64 + 1 + 64 + 1


def _on_signal(signum: int, _frame: object) -> None:
    """A stop signal. With snapshots (`waits`), note it: the training loop writes a snapshot
    and stops at its next top, or the timer (`GRACE_SECONDS`) stops it without one (a long
    update). Without, stop here at once: :raises StoppedError: where the signal lands (nothing
    of the training is on disk to leave half-written). While a snapshot is written the signal is
    only noted; the snapshot is finished first. A second signal is not waited for: the default
    action is restored for it."""
    _stop.signum = signum
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL if sig == signal.SIGTERM else signal.default_int_handler)
    if _stop.saving:
        return
    if not _stop.waits:
        raise _stopped(signum, "")
    signal.signal(signal.SIGALRM, _on_grace_over)
    signal.setitimer(signal.ITIMER_REAL, GRACE_SECONDS)


def _on_grace_over(_signum: int, _frame: object) -> None:
    """The training loop did not reach its top within `GRACE_SECONDS` of the stop signal (an
    update still running): :raises StoppedError: here, unless a snapshot is being written
    (then the loop stops right after it)."""
    if not _stop.saving and _stop.signum is not None:
        raise _stopped(_stop.signum, f"in the middle of an update ({GRACE_SECONDS:g} s later)")


@contextmanager
def stop_on_signals(label: str, snapshot: Path | None) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT (Slurm's pre-emption, `dvc queue kill`, Ctrl-C) stop
    the training within seconds, as a `StoppedError` (exit 128 + the signal's number): with
    snapshots at `snapshot`, after writing one at the next top of the training loop (within
    `GRACE_SECONDS`, else without: the last one stays whole); without (None), at once.

    :param label: the run's name in the message, e.g. "cartpole-ppo seed 0".
    """
    global _stop
    _stop = _Stop(waits=snapshot is not None, label=label, snapshot=snapshot)
    stops = (signal.SIGTERM, signal.SIGINT)
    before = {sig: signal.signal(sig, _on_signal) for sig in stops}
    alarm = signal.getsignal(signal.SIGALRM)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, alarm)
        for sig, handler in before.items():
            signal.signal(sig, handler)
        _stop = _Stop()


def code_digest(stage: str, root: str, pipeline: Path = Path("dvc.yaml")) -> str:
    """sha256 of the code stage `stage` depends on and of the installed distributions.

    The code is the stage's code deps as `pipeline` lists them (those under `${root}`, with
    `root` from params), each folder's files read as DVC hashes them (no byte-code caches):
    one list, in `dvc.yaml`, for DVC and for the snapshots. The distributions' names carry
    their versions (`requirements.installed`).

    :raises StageError: when `pipeline` is missing or has no such stage.
    """
    try:
        deps = yaml.safe_load(pipeline.read_text(encoding="utf-8"))["stages"][stage]["deps"]
    except (OSError, KeyError, TypeError) as err:
        raise StageError(
            f"{pipeline}: no `{stage}` stage with deps here ({err}); snapshots (params `resume`) "
            "are keyed on its code deps: run the stage from its dvc.yaml's folder, or drop "
            "`resume`"
        ) from None
    digest = hashlib.sha256()
    for dep in sorted(d for d in deps if d.startswith("${root}/")):
        top = Path(dep.replace("${root}", root, 1))
        files = sorted(top.rglob("*")) if top.is_dir() else [top]
        for file in files:
            if file.is_dir() or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            digest.update(f"{file.relative_to(top.parent)}\0".encode())
            digest.update(file.read_bytes() if file.is_file() else b"<missing>")
    digest.update("\n".join(requirements.installed()).encode())
    return digest.hexdigest()


def run_key(shaping: dict[str, Any], code: str) -> str:
    """The key of a run: sha256 of what shapes it (params as plain data) and the code digest."""
    return hashlib.sha256(f"{canonical_json(shaping)}\0{code}".encode()).hexdigest()


class Snapshots:
    """The snapshots of one run.

    :param path: the snapshot file, e.g. `snapshots/cartpole-ppo-0.pkl`.
    :param key: the run's key (`run_key`); a file with another key is ignored.
    :param every: env steps between snapshots.
    :param label: the run's name in messages, e.g. "cartpole-ppo seed 0".
    """

    def __init__(self, path: Path, key: str, every: int, label: str) -> None:
        self.path, self.key, self.every, self.label = path, key, every, label
        self._next = every

    def load(self) -> dict[str, Any] | None:
        """The state of a matching snapshot, with the global RNGs restored; none when there is
        no snapshot or its key is another run's (or it is damaged: then the run starts over)."""
        try:
            with self.path.open("rb") as file:
                header = file.readline(_HEADER_LIMIT).split()
                if len(header) != 2 or header[0] != self.key.encode():
                    return None  # another run's, or not a snapshot
                body = file.read()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StageError(
                f"{self.path}: cannot read the snapshot ({err.strerror}); remove it to start over"
            ) from None
        if hashlib.sha256(body).hexdigest().encode() != header[1]:
            print(f"{self.path}: damaged snapshot, ignored; starting over", file=sys.stderr)
            return None
        state: dict[str, Any] = pickle.loads(body)  # our own file, its key matched
        if (
            not isinstance(state, dict)
            or not isinstance(state.get("step"), int)
            or ("rngs" not in state)
        ):
            raise StageError(
                f"{self.path}: a snapshot of this run without its step or RNGs; remove it to "
                "start over"
            )
        rngs = state.pop("rngs")
        random.setstate(rngs["python"])
        np.random.set_state(rngs["numpy"])
        torch.set_rng_state(rngs["torch"])
        self._next = (state["step"] // self.every + 1) * self.every
        print(f"resuming {self.label} from step {state['step']:,}", file=sys.stderr, flush=True)
        return state

    def at_top(self, step: int, state: Callable[[], dict[str, Any]]) -> None:
        """The training loop is at its top at env step `step`: write `state()` when a snapshot
        is due, or a stop was asked for (then :raises StoppedError:)."""
        if step < self._next and _stop.signum is None:
            return
        self.save(step, state())
        self._next = (step // self.every + 1) * self.every
        stop = _stop.signum  # also one that arrived while the snapshot was written
        if stop is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            name = signal.Signals(stop).name
            raise StoppedError(
                f"{self.label}: stopped by {name} at step {step:,}; snapshot {self.path} "
                "written: rerun `dvc repro` to resume",
                stop,
            )

    def save(self, step: int, state: dict[str, Any]) -> None:
        """Write `state` (at env step `step`) with the global RNGs, atomically."""
        rngs = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
        }
        buffer = io.BytesIO()
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
            {**state, "step": step, "rngs": rngs}
        )
        body = buffer.getvalue()
        header = f"{self.key} {hashlib.sha256(body).hexdigest()}\n".encode()
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        _stop.saving = True  # a stop signal meanwhile waits for the rename
        try:
            with writing(self.path):  # a full disk: one line, the last snapshot stays whole
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with temporary.open("wb") as file:
                    file.write(header)
                    file.write(body[: len(body) // 2])
                    file.flush()
                    faults.in_write()
                    file.write(body[len(body) // 2 :])
                    file.flush()
                    os.fsync(file.fileno())
                temporary.replace(self.path)
        finally:
            _stop.saving = False
            temporary.unlink(missing_ok=True)

    def remove(self) -> None:
        """Remove the snapshot and any temporary file a killed write left behind."""
        self.path.unlink(missing_ok=True)
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            leftover.unlink(missing_ok=True)


class _Pickler(pickle.Pickler):
    """Pickles MuJoCo envs with their simulation, `VecNormalize` whole, replay buffers lean."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.dtype) and obj.isbuiltin == 1:
            return np.dtype, (obj.str,)
        if _is_mujoco_env(obj):
            import mujoco

            attrs = {
                k: v
                for k, v in obj.__dict__.items()
                if k not in _MUJOCO_ATTRS and not isinstance(v, (mujoco.MjModel, mujoco.MjData))
            }
            physics = np.empty(mujoco.mj_stateSize(obj.model, _integration()))
            mujoco.mj_getState(obj.model, obj.data, physics, _integration())
            args = (type(obj), obj._ezpickle_args, obj._ezpickle_kwargs)
            return _rebuild_env, args, (attrs, physics), None, None, _set_env
        if isinstance(obj, VecNormalize):
            attrs = {k: v for k, v in obj.__dict__.items() if k != "class_attributes"}
            return _bare, (type(obj),), attrs, None, None, _set_vec_normalize
        if isinstance(obj, ReplayBuffer) and not obj.full:
            attrs = {
                k: (_Rows(v.shape, v[: obj.pos]) if _is_rows(v, obj.buffer_size) else v)
                for k, v in obj.__dict__.items()
            }
            return _bare, (type(obj),), attrs, None, None, _set_buffer
        return NotImplemented


class _Rows:
    """The filled rows of a zero-initialised buffer array of `shape`."""

    def __init__(self, shape: tuple[int, ...], rows: np.ndarray) -> None:
        self.shape, self.rows = shape, rows.copy()

    def array(self) -> np.ndarray:
        full = np.zeros(self.shape, dtype=self.rows.dtype)
        full[: len(self.rows)] = self.rows
        return full


def _is_rows(value: object, size: int) -> bool:
    return isinstance(value, np.ndarray) and value.ndim > 0 and value.shape[0] == size


def _is_mujoco_env(obj: object) -> bool:
    """Whether `obj` is a Gymnasium MuJoCo env, without importing MuJoCo where no env did."""
    module = sys.modules.get(_MUJOCO_ENV)
    return module is not None and isinstance(obj, module.MujocoEnv)


def _integration() -> Any:
    """MuJoCo's integration state: everything a step reads (warm start included)."""
    import mujoco

    return mujoco.mjtState.mjSTATE_INTEGRATION


def _rebuild_env(cls: "type[MujocoEnv]", args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return cls(*args, **kwargs)


def _set_env(env: "MujocoEnv", state: tuple[dict[str, Any], np.ndarray]) -> None:
    import mujoco

    attrs, physics = state
    env.__dict__.update(attrs)
    mujoco.mj_setState(env.model, env.data, physics, _integration())


def _bare(cls: type[Any]) -> Any:
    return object.__new__(cls)


def _set_vec_normalize(env: VecNormalize, attrs: dict[str, Any]) -> None:
    env.__dict__.update(attrs)
    env.class_attributes = dict(inspect.getmembers(env.__class__))


def _set_buffer(buffer: ReplayBuffer, attrs: dict[str, Any]) -> None:
    buffer.__dict__.update({k: v.array() if isinstance(v, _Rows) else v for k, v in attrs.items()})
