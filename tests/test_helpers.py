"""Pure helpers: checkpoints, files, returns, curves, versions, progress."""

import base64
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
from packaging.requirements import Requirement
from torch import nn

from rlrepro.agents import checkpoint, load_actor
from rlrepro.agents.networks import GaussianPolicy, mlp
from rlrepro.console import Progress
from rlrepro.core.errors import CheckpointError, StageError
from rlrepro.core.files import canonical_json, write_bytes
from rlrepro.core.params import ACTIVATIONS
from rlrepro.core.requirements import locked, mismatches
from rlrepro.machine.facts import facts
from rlrepro.machine.physics import check as physics_check
from rlrepro.machine.physics import rollout_digest
from rlrepro.results.curves import mean_curve, smooth
from rlrepro.training.reinforce import acting, discounted_returns
from rlrepro.training.trace import Trace, first_parting
from tests.conftest import ROOT


def test_canonical_zip_ignores_insertion_order_and_fixes_metadata() -> None:
    a = checkpoint.canonical_zip({"b": b"2", "a": b"1"})
    b = checkpoint.canonical_zip({"a": b"1", "b": b"2"})
    assert a == b
    with zipfile.ZipFile(io.BytesIO(a)) as archive:
        assert archive.namelist() == ["a", "b"]
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}


def test_sb3_entries_drop_machine_and_clock_values() -> None:
    data = {
        "start_time": 123,
        "ep_info_buffer": [1],
        "gamma": 0.99,
        "policy_class": {":serialized:": "xyz", "forward": "<function f at 0x7f00deadbeef>"},
    }
    saved = io.BytesIO()
    with zipfile.ZipFile(saved, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("system_info.txt", "host: somewhere")
        archive.writestr("policy.pth", b"weights")
    entries = checkpoint.sb3_entries(saved.getvalue())
    assert sorted(entries) == ["data", "policy.pth"]
    cleaned = json.loads(entries["data"])
    assert cleaned == {
        "gamma": 0.99,
        "policy_class": {":serialized:": "xyz", "forward": "<function f>"},
    }


@pytest.mark.parametrize("train_freq", [4, (2, "episode")])
def test_sb3_train_freq_is_a_plain_tuple_that_sb3_loads(
    tmp_path: Path, train_freq: int | tuple[int, str]
) -> None:
    """No pickled class or enum of the running interpreter: the entry is the protocol-4 pickle
    of a plain tuple (the same bytes on every CPython build), and SB3's load restores it."""
    from stable_baselines3 import DQN
    from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit

    model = DQN("MlpPolicy", "CartPole-v1", train_freq=train_freq, learning_starts=0, seed=0)
    saved = io.BytesIO()
    model.save(saved)
    entries = checkpoint.sb3_entries(saved.getvalue())
    entry = json.loads(entries["data"])["train_freq"]
    frequency, unit = (train_freq, "step") if isinstance(train_freq, int) else train_freq
    assert base64.b64decode(entry[":serialized:"]) == pickle.dumps((frequency, unit), protocol=4)
    path = tmp_path / "dqn.zip"
    path.write_bytes(checkpoint.canonical_zip(entries))
    loaded = DQN.load(path)
    restored: object = loaded.train_freq
    assert restored == TrainFreq(frequency, TrainFrequencyUnit(unit))
    assert isinstance(restored, TrainFreq)


META = {
    "algo": "ppo",
    "env": "CartPole-v1",
    "experiment": "cartpole-ppo",
    "seed": 0,
    "network": {"hidden": [8], "activation": "tanh"},
}


def test_checkpoint_meta_round_trip_and_version_check(tmp_path: Path) -> None:
    path = tmp_path / "m.zip"
    checkpoint.write(path, META, {"data": b"{}"})
    assert checkpoint.read_meta(path) == {**META, "format": checkpoint.FORMAT_VERSION}
    bad = tmp_path / "old.zip"
    bad.write_bytes(checkpoint.canonical_zip({checkpoint.META_ENTRY: b'{"format": 0}'}))
    with pytest.raises(CheckpointError, match="checkpoint format 0"):
        checkpoint.read_meta(bad)
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="not a whole zip"):
        checkpoint.read_meta(truncated)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"network": None}, "rlrepro.json.network: expected a mapping, got None"),
        ({"seed": -1}, "rlrepro.json.seed: expected an integer >= 0, got -1"),
        ({"algo": "xyz"}, "rlrepro.json.algo: unknown algorithm 'xyz'"),
        ({"env": ""}, "rlrepro.json.env: expected a non-empty string, got ''"),
        (
            {"network": {"hidden": [0], "activation": "tanh"}},
            "rlrepro.json.network.hidden[0]: expected an integer >= 1, got 0",
        ),
        (
            {"network": {"hidden": [8], "activation": "swish"}},
            "rlrepro.json.network.activation: unknown activation 'swish'",
        ),
        (
            {"algo": "reinforce"},
            "rlrepro.json.network: reinforce needs obs_dim, act_dim, std_eps",
        ),
        ({"extra": 1}, "rlrepro.json.extra: unknown key; accepted: algo, env, experiment"),
    ],
)
def test_checkpoint_meta_fields_are_checked_one_line_each(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "m.zip"
    checkpoint.write(path, {**META, **change}, {})
    with pytest.raises(CheckpointError) as caught:
        checkpoint.read_meta(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    assert str(caught.value).endswith("; retrain it with `dvc repro`")
    assert "\n" not in str(caught.value)


def test_missing_meta_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "m.zip"
    checkpoint.write(path, {k: v for k, v in META.items() if k != "network"}, {})
    with pytest.raises(CheckpointError, match=r"m\.zip: rlrepro\.json\.network: missing key"):
        checkpoint.read_meta(path)


def test_a_checkpoint_without_its_weights_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.zip"
    checkpoint.write(path, META, {})
    with pytest.raises(CheckpointError, match=r"m\.zip: no `.*`policy\.pth`.* entries; retrain it"):
        load_actor(path, gym.make("CartPole-v1"))


def test_write_bytes_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    write_bytes(target, b"one")
    write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_write_bytes_leaves_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_canonical_json_is_order_independent() -> None:
    assert canonical_json({"b": 1, "a": [1.5]}) == canonical_json({"a": [1.5], "b": 1})
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_discounted_returns_known_values() -> None:
    np.testing.assert_allclose(discounted_returns([1.0, 1.0, 1.0], 0.5), [1.75, 1.5, 1.0])
    assert discounted_returns([], 0.9).shape == (0,)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_reinforce_acting_gives_the_bits_of_the_policy(activation: str) -> None:
    torch.manual_seed(0)
    policy = GaussianPolicy(4, 2, (16, 32), activation, 1e-6)
    low, high = np.full(2, -0.5, dtype=np.float32), np.full(2, 0.5, dtype=np.float32)
    act = acting(policy, low, high)
    observations = np.random.default_rng(0).normal(size=(200, 4))
    noise = torch.randn(200, 2)
    with torch.no_grad():
        rows = [act(obs, n) for obs, n in zip(observations, noise, strict=True)]
        singles = [policy(torch.as_tensor(obs, dtype=torch.float32)) for obs in observations]
    actions = torch.cat([action for action, _ in rows])
    assert torch.equal(
        actions, torch.stack([m + s * n for (m, s), n in zip(singles, noise, strict=True)])
    )
    clipped = np.stack([c for _, c in rows])
    assert clipped.dtype == np.float32 and np.array_equal(clipped, np.clip(actions, low, high))


def test_smooth_is_trailing_mean() -> None:
    np.testing.assert_allclose(smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])


def test_mean_curve_on_shared_grid() -> None:
    a = pd.DataFrame({"step": [10, 20, 30], "episode_return": [0.0, 10.0, 20.0]})
    b = pd.DataFrame({"step": [10, 25, 40], "episode_return": [10.0, 10.0, 10.0]})
    curve = mean_curve([a, b], points=3, window=1, confidence=0.95)
    assert curve["step"].tolist() == [10, 20, 30]
    assert curve["return_mean"].tolist() == [5.0, 10.0, 15.0]
    assert curve["return_std"].tolist() == [5.0, 0.0, 5.0]
    assert set(curve["n_seeds"]) == {2}
    # two seeds: the t interval is mean +- t(0.975, 1) * sample std / sqrt(2) = +- 12.706 * 5
    np.testing.assert_allclose(
        curve["return_ci_high"] - curve["return_mean"], [63.53, 0, 63.53], atol=0.01
    )
    by_episode = mean_curve([a, b], points=3, window=1, confidence=0.95, x="episode")
    assert by_episode["episode"].tolist() == [1, 2, 3]
    assert by_episode["return_mean"].tolist() == [5.0, 10.0, 15.0]


def test_mlp_maps_sizes_and_activation() -> None:
    net = mlp((4, 16, 32), "relu")
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear", "ReLU"]
    first, last = net[0], net[2]
    assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
    assert (first.in_features, last.out_features) == (4, 32)


def test_version_mismatches_names_each_difference(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text(
        "# header\npytest==0.0.1  # via -r requirements.in\nno-such-package-xyz==1.0\n"
        "numpy==" + np.__version__ + "\n"
    )
    found = mismatches(locked(lock))
    assert len(found) == 2
    assert found[0].startswith("pytest: locked ==0.0.1, installed ")
    assert found[1] == "no-such-package-xyz: locked ==1.0, installed not installed"


def test_another_build_of_a_locked_version_is_refused() -> None:
    """The lock names torch's CPU build (+cpu): PyPI's torch of the same version (the CUDA
    build, no label) breaks it, and so would a CPU build under a lock without the label."""
    import torch

    assert torch.__version__ == "2.13.0+cpu"
    pins = [Requirement(str(r)) for r in locked(ROOT / "requirements.txt") if r.name == "torch"]
    assert [str(r) for r in pins] == ["torch==2.13.0+cpu"]
    assert mismatches(pins) == []
    assert mismatches([Requirement("torch==2.13.0+cu130")]) == [
        "torch: locked ==2.13.0+cu130, installed 2.13.0+cpu"
    ]
    assert mismatches([Requirement("numpy==" + np.__version__ + "+custom")]) == [
        f"numpy: locked =={np.__version__}+custom, installed {np.__version__}"
    ]


def test_the_lock_pins_every_wheel_by_hash() -> None:
    """Every requirement of the lock carries its hashes (pip's hash-checking mode), and its
    only index line is PyTorch's CPU index (no path of a developer's machine)."""
    text = (ROOT / "requirements.txt").read_text()
    blocks = [b for b in text.replace("\\\n", " ").splitlines() if "==" in b.split("#")[0]]
    assert len(blocks) == len(locked(ROOT / "requirements.txt"))
    assert all(" --hash=sha256:" in block for block in blocks)
    options = [line for line in text.splitlines() if line.startswith("-")]
    assert options == ["--extra-index-url https://download.pytorch.org/whl/cpu"]


def test_progress_prints_plain_lines_off_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(100, "steps", "run", stream=stream)
    for done in range(0, 101, 5):
        progress.update(done)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "run: 0/100 steps"
    assert lines[-1] == "run: done, 100 steps"
    assert 10 <= len(lines) <= 12


def test_pins_override_the_shell_before_torch_loads() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import rlrepro, os, torch; "
        "print(torch.get_num_threads(), os.environ['MKL_CBWR'], os.environ['OMP_NUM_THREADS'], "
        "torch.backends.cpu.get_cpu_capability())"
    )
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "MKL_CBWR": "AUTO",
        "ATEN_CPU_CAPABILITY": "default",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["1", "COMPATIBLE", "1", "AVX2"]


def test_trace_records_due_updates_and_finds_first_parting() -> None:
    weights = [torch.zeros(3)]
    trace = Trace(every=2)
    for update in range(5):
        trace.record(update, update * 10, weights, np.zeros(2))
    trace.record(4, 40, weights, np.zeros(2), force=True)
    trace.record(5, 50, weights, np.ones(2), force=True)
    assert [p.update for p in trace.points] == [0, 2, 4, 5]
    other = Trace(every=2)
    for update in range(5):
        other.record(update, update * 10, [torch.ones(3)] if update >= 2 else weights, np.zeros(2))
    parting = first_parting(trace.points, other.points)
    assert parting is not None and parting.update == 2
    assert first_parting(trace.points, list(trace.points)) is None


def test_physics_digest_is_stable_and_checked(tmp_path: Path) -> None:
    digest = rollout_digest("InvertedPendulum-v5", 200, seed=0)
    assert digest == rollout_digest("InvertedPendulum-v5", 200, seed=0)
    assert digest != rollout_digest("InvertedPendulum-v5", 200, seed=1)
    refs = tmp_path / "physics.json"
    refs.write_text(
        json.dumps({"InvertedPendulum-v5": {"steps": 200, "seed": 0, "sha256": digest}})
    )
    assert physics_check("InvertedPendulum-v5", 200, 0, refs) == digest
    refs.write_text(
        json.dumps({"InvertedPendulum-v5": {"steps": 200, "seed": 0, "sha256": "0" * 64}})
    )
    with pytest.raises(
        StageError, match=r"simulator \(x86_64, MuJoCo [\d.]+\) parts from the reference"
    ):
        physics_check("InvertedPendulum-v5", 200, 0, refs)
    with pytest.raises(StageError, match="no physics digest for CartPole-v1"):
        physics_check("CartPole-v1", 200, 0, refs)
    refs.write_text("{")
    with pytest.raises(StageError, match=r"physics\.json: not valid JSON \(Expecting"):
        physics_check("CartPole-v1", 200, 0, refs)
    refs.unlink()
    with pytest.raises(StageError, match=r"physics\.json: no such file; it is the repository's"):
        physics_check("CartPole-v1", 200, 0, refs)


def test_committed_references_match_this_machine() -> None:
    from tests.conftest import ROOT

    refs = json.loads((ROOT / "references" / "physics.json").read_text())
    for env_id, ref in refs.items():
        assert rollout_digest(env_id, ref["steps"], ref["seed"]) == ref["sha256"], env_id


def test_machine_facts_name_cpu_and_versions() -> None:
    found = facts()
    assert found["cpu_count"] >= 1 and found["packages"]["torch"].startswith("2.13.0")
    assert found["machine"] and isinstance(found["cpu_flags"], list)
