"""Checkpoints read within bounds: a crafted or damaged zip, unreadable weights, and metadata
that does not fit the weights are each one line naming the checkpoint (exit 2), and a zip bomb
costs no memory (`rlrepro.agents.checkpoint.load`)."""

import io
import json
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlrepro.agents import checkpoint, load_actor
from rlrepro.core.errors import CheckpointError
from stages import evaluate
from tests.conftest import ROOT, argv, tiny_params, train_run, write_params

TINY_PPO = {
    "env": "CartPole-v1",
    "algo": "ppo",
    "budget": {"steps": 128},
    "policy": {"hidden": [8, 8], "activation": "tanh"},
    "hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 1},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny PPO checkpoint on CartPole, trained in-process, and its params file."""
    folder = tmp_path_factory.mktemp("checkpoint")
    data = tiny_params()
    data["experiments"] = {"cartpole-ppo": TINY_PPO}
    params_file = write_params(folder / "params.yaml", data)
    return train_run(params_file, folder, "cartpole-ppo").model, params_file


def _entries(model: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(model) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


class Member(NamedTuple):
    """A zip entry as `_zip` writes it: its name and bytes in the file, and what the directory
    declares of it (by default, what the bytes are: stored, their size and CRC)."""

    name: str
    data: bytes
    method: int = zipfile.ZIP_STORED
    size: int | None = None
    compressed: int | None = None
    crc: int | None = None


def _zip(members: list[Member]) -> bytes:
    """A zip of `members` written by hand, so that its directory may say what its data is not
    (the zip module's writer would not)."""
    out, central = bytearray(), bytearray()
    for member in members:
        encoded, data = member.name.encode(), member.data
        size = len(data) if member.size is None else member.size
        compressed = len(data) if member.compressed is None else member.compressed
        crc = zlib.crc32(data) if member.crc is None else member.crc
        head = (0, member.method, 0, 0x21, crc, compressed, size, len(encoded), 0)
        central += struct.pack(
            "<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, *head, 0, 0, 0, 0o644 << 16, len(out)
        )
        central += encoded
        out += struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, *head) + encoded + data
    count = len(members)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), len(out), 0)
    return bytes(out + central + end)


def _stored(entries: dict[str, bytes], **replaced: Member) -> list[Member]:
    """`entries` as stored members, those named in `replaced` (by name, `.` as `_`) replaced."""
    return [
        replaced.get(name.replace(".", "_"), Member(name, data))
        for name, data in sorted(entries.items())
    ]


def _zeros(gib: int) -> Member:
    """`zeros.bin`: `gib` GiB of zeros, deflated to about a thousandth of that (each MiB one
    fully flushed block, the same bytes every time)."""
    chunk = bytes(2**20)
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    flushed = block.compress(chunk) + block.flush(zlib.Z_FULL_FLUSH)
    stream = flushed * (gib * 1024) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc = 0
    for _ in range(gib * 1024):
        crc = zlib.crc32(chunk, crc)
    return Member("zeros.bin", stream, zipfile.ZIP_DEFLATED, gib * 2**30, crc=crc)


def _peak_rss(args: list[str]) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run `python -m stages.evaluate args` in a process of its own; :return: it and its peak
    resident memory in bytes (measured by a parent with no other child)."""
    measure = (
        "import resource, subprocess, sys;"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "sys.stderr.write(done.stderr);"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = [sys.executable, "-c", measure, sys.executable, "-m", "stages.evaluate", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    code, kib = done.stdout.split()
    return subprocess.CompletedProcess(command, int(code), "", done.stderr), int(kib) * 1024


def test_a_zip_bomb_is_refused_from_the_directory_within_bounds(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """The issue's crafted checkpoint: 3 MB on disk, a 3 GiB member of zeros. Refused before a
    byte of it is read: `stages.evaluate` peaks no higher than on the real checkpoint."""
    model, params_file = trained
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(_zip([*_stored(_entries(model)), _zeros(3)]))
    assert bomb.stat().st_size < 4 * 2**20
    with zipfile.ZipFile(bomb) as archive:  # what the directory declares
        assert sum(info.file_size for info in archive.infolist()) > 3 * 2**30
    normal, normal_peak = _peak_rss(argv(params_file, _paths(model, tmp_path / "n")))
    assert normal.returncode == 0, normal.stderr
    crafted, crafted_peak = _peak_rss(argv(params_file, _paths(bomb, tmp_path / "c")))
    assert crafted.returncode == 2
    assert crafted.stderr == (
        f"error: {bomb}: entry `zeros.bin` is not one a checkpoint holds; "
        "retrain it with `dvc repro`\n"
    )
    assert crafted_peak < normal_peak + 32 * 2**20, (crafted_peak, normal_peak)


def _paths(model: Path, folder: Path) -> evaluate.Paths:
    folder.mkdir(exist_ok=True)
    return evaluate.Paths(model, folder / "e.csv", folder / "e.json")


def _meta_changed(entries: dict[str, bytes], **change: Any) -> dict[str, bytes]:
    meta = json.loads(entries["rlrepro.json"]) | change
    return entries | {"rlrepro.json": json.dumps(meta).encode()}


def _with_bad_crc(model: Path) -> bytes:
    """The checkpoint's bytes with one byte of `policy.pth`'s data changed."""
    raw = bytearray(model.read_bytes())
    with zipfile.ZipFile(model) as archive:
        info = archive.getinfo("policy.pth")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + info.file_size // 2] ^= 0xFF
    return bytes(raw)


def _torch_file(records: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in records.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _garbage_pickle(entries: dict[str, bytes]) -> dict[str, bytes]:
    """`policy.pth` as torch's zip whose pickle is garbage."""
    with zipfile.ZipFile(io.BytesIO(entries["policy.pth"])) as inner:
        records = {name: inner.read(name) for name in inner.namelist()}
    pickled = next(name for name in records if name.endswith("data.pkl"))
    return entries | {"policy.pth": _torch_file(records | {pickled: b"\x80\x02garbage."})}


def _saved(policy: bytes, replaced: dict[str, torch.Tensor]) -> bytes:
    """`policy.pth` (`policy`) saved again with the tensors in `replaced` instead."""
    state = torch.load(io.BytesIO(policy), weights_only=True) | replaced
    saved = io.BytesIO()
    torch.save(state, saved)
    return saved.getvalue()


def _crafted(model: Path) -> dict[str, tuple[bytes, str]]:
    """Each crafted or damaged checkpoint by case: its bytes and the line it gives."""
    entries = _entries(model)
    policy = entries["policy.pth"]
    zeros = zlib.compress(bytes(2**20))[2:-4]  # raw deflate
    deflated = Member(
        "policy.pth", zeros, zipfile.ZIP_DEFLATED, 2**20, crc=zlib.crc32(bytes(2**20))
    )
    huge = Member("policy.pth", policy, size=2**30)
    # Less than the file holds, size and CRC alike: read up to there, whose CRC is not that.
    short = Member("policy.pth", policy, size=len(policy) - 1, compressed=len(policy) - 1)
    nan = torch.tensor([float("nan")])
    f64 = torch.zeros(1, dtype=torch.float64)
    wide = torch.zeros(1).expand(10**8)  # 400 MB of values over a 4-byte storage
    weights_env = "`policy.pth`'s `mlp_extractor.policy_net.0.weight` is (8, 4), not (8, 3) as "
    return {
        "truncated": (
            model.read_bytes()[:-100],
            "not a whole zip (no end record at its end: cut short or added to)",
        ),
        "bad CRC": (_with_bad_crc(model), "not a readable zip (Bad CRC-32 for file 'policy.pth')"),
        "extra member": (
            checkpoint.canonical_zip(entries | {"notes.txt": b"hi"}),
            "entry `notes.txt` is not one a checkpoint holds",
        ),
        "deflated member": (
            _zip(_stored(entries, policy_pth=deflated)),
            "entry `policy.pth` is compressed; a checkpoint's entries are stored",
        ),
        "member beyond its limit": (
            _zip(_stored(entries, policy_pth=huge)),
            f"entry `policy.pth` declares 1,073,741,824 bytes ({len(policy):,} in the file), "
            "at most 268,435,456 allowed",
        ),
        "directory declaring less": (
            _zip(_stored(entries, policy_pth=short)),
            "not a readable zip (Bad CRC-32 for file 'policy.pth')",
        ),
        "garbage weights": (
            checkpoint.canonical_zip(entries | {"policy.pth": bytes(range(256)) * 8}),
            "entry `policy.pth` is no torch file (File is not a zip file)",
        ),
        "garbage pickle in the weights": (
            checkpoint.canonical_zip(_garbage_pickle(entries)),
            "`policy.pth` holds no readable weights (Unsupported operand 103)",
        ),
        "weights that are not finite": (
            checkpoint.canonical_zip(
                entries | {"policy.pth": _saved(policy, {"value_net.bias": nan})}
            ),
            "`policy.pth`'s `value_net.bias` holds values that are not finite",
        ),
        "weights of float64": (
            checkpoint.canonical_zip(
                entries | {"policy.pth": _saved(policy, {"value_net.bias": f64})}
            ),
            "`policy.pth`'s `value_net.bias` is no dense float32 tensor",
        ),
        "a tensor repeating its storage": (
            checkpoint.canonical_zip(
                entries | {"policy.pth": _saved(policy, {"value_net.bias": wide})}
            ),
            "`policy.pth`'s `value_net.bias` is not contiguous",
        ),
        "deflated torch record": (
            checkpoint.canonical_zip(
                entries | {"policy.pth": _torch_file({"a/data/0": bytes(2**20)}, 8)}
            ),
            "entry `policy.pth` is no torch file of stored records",
        ),
        "another env": (
            checkpoint.canonical_zip(_meta_changed(entries, env="Pendulum-v1")),
            weights_env + "Pendulum-v1's 3 observation values, 1 actions and network.hidden",
        ),
        "an env Gymnasium does not know": (
            checkpoint.canonical_zip(_meta_changed(entries, env="NoSuchEnv-v0")),
            "rlrepro.json.env: 'NoSuchEnv-v0' is no env id Gymnasium knows",
        ),
        "another algorithm, same entries": (
            checkpoint.canonical_zip(_meta_changed(entries, algo="dqn")),
            "`policy.pth` holds modules action_net, mlp_extractor, value_net, a2c or ppo's, "
            "not dqn's",
        ),
        "another algorithm, other entries": (
            checkpoint.canonical_zip(_meta_changed(entries, algo="td3")),
            "no `actor.optimizer.pth`, `critic.optimizer.pth` entries",
        ),
        "other hidden layers": (
            checkpoint.canonical_zip(
                _meta_changed(entries, network={"hidden": [8], "activation": "tanh"})
            ),
            "`policy.pth`'s actor has 2 hidden layers, network.hidden [8]",
        ),
        "a network far larger than the weights": (
            checkpoint.canonical_zip(
                _meta_changed(entries, network={"hidden": [10**5, 10**5], "activation": "tanh"})
            ),
            "network.hidden [100000, 100000] needs more than the 251 values `policy.pth` holds",
        ),
        "other layer sizes": (
            checkpoint.canonical_zip(
                _meta_changed(entries, network={"hidden": [8, 16], "activation": "tanh"})
            ),
            "`policy.pth`'s `mlp_extractor.policy_net.2.weight` is (8, 8), not (16, 8)",
        ),
    }


CASES = [
    "truncated",
    "bad CRC",
    "extra member",
    "deflated member",
    "member beyond its limit",
    "directory declaring less",
    "garbage weights",
    "garbage pickle in the weights",
    "weights that are not finite",
    "weights of float64",
    "a tensor repeating its storage",
    "deflated torch record",
    "another env",
    "an env Gymnasium does not know",
    "another algorithm, same entries",
    "another algorithm, other entries",
    "other hidden layers",
    "a network far larger than the weights",
    "other layer sizes",
]


@pytest.mark.parametrize("case", CASES)
def test_a_crafted_checkpoint_is_one_line_and_exit_2(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    model, params_file = trained
    data, line = _crafted(model)[case]
    crafted = tmp_path / "crafted.zip"
    crafted.write_bytes(data)
    paths = _paths(crafted, tmp_path)
    capsys.readouterr()
    assert evaluate.main(argv(params_file, paths)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {crafted}: {line}"), err
    assert err.endswith("; retrain it with `dvc repro`\n") and err.count("\n") == 1, err
    assert not paths.episodes.exists()


def test_garbage_weights_are_one_line_from_python_m(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """The same through `python -m stages.evaluate`, as DVC runs it."""
    model, params_file = trained
    crafted = tmp_path / "crafted.zip"
    crafted.write_bytes(checkpoint.canonical_zip(_garbage_pickle(_entries(model))))
    command = [
        sys.executable,
        "-m",
        "stages.evaluate",
        *argv(params_file, _paths(crafted, tmp_path)),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr == (
        f"error: {crafted}: `policy.pth` holds no readable weights (Unsupported operand 103); "
        "retrain it with `dvc repro`\n"
    )


# Where a byte is flipped: the first entry's local header, then every 97th byte, then the
# directory's last bytes (the end record and the last entries' directory records).
def _flip_positions(size: int) -> list[int]:
    return sorted({*range(0, 30, 3), *range(31, size, size // 24), *range(size - 200, size, 9)})


def test_a_flipped_byte_loads_the_same_actor_or_is_a_checkpoint_error(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    model, _ = trained
    env = gym.make("CartPole-v1")
    obs = np.random.default_rng(0).normal(0.0, 1.0, (64, 4)).astype(np.float32)
    expected = load_actor(model, env)(obs)
    raw = model.read_bytes()
    outcomes: dict[str, int] = {"same": 0, "refused": 0}
    for position in _flip_positions(len(raw)):
        flipped = tmp_path / f"flip-{position}.zip"
        flipped.write_bytes(raw[:position] + bytes([raw[position] ^ 0x5A]) + raw[position + 1 :])
        try:
            got = load_actor(flipped, env)(obs)
        except CheckpointError as err:
            assert str(err).startswith(f"{flipped}: ") and "\n" not in str(err)
            outcomes["refused"] += 1
        else:
            assert got.tobytes() == expected.tobytes(), position
            outcomes["same"] += 1
    assert outcomes["refused"] > 30 and sum(outcomes.values()) >= 40, outcomes


def test_sb3_load_still_opens_the_checkpoint(trained: tuple[Path, Path]) -> None:
    """The README's promise: `PPO.load` reads our checkpoints, which pass our own checks."""
    from stable_baselines3 import PPO

    model, _ = trained
    loaded = checkpoint.load(model)
    assert sorted(loaded.entries) == sorted(checkpoint.ENTRIES["ppo"][0])
    obs = np.zeros((1, 4), dtype=np.float32)
    action, _ = PPO.load(model, device="cpu").predict(obs, deterministic=True)
    assert action.tobytes() == load_actor(loaded, gym.make("CartPole-v1"))(obs).tobytes()


def test_reinforce_weights_of_another_env_are_one_line(tmp_path: Path) -> None:
    """REINFORCE's `rlrepro.json` names its policy's sizes: another env's are refused."""
    params_file = write_params(tmp_path / "params.yaml", tiny_params())
    model = train_run(params_file, tmp_path, "pendulum-reinforce").model
    crafted = tmp_path / "crafted.zip"
    crafted.write_bytes(checkpoint.canonical_zip(_meta_changed(_entries(model), env="Pendulum-v1")))
    with pytest.raises(CheckpointError) as caught:
        load_actor(crafted, gym.make("Pendulum-v1"))
    assert str(caught.value) == (
        f"{crafted}: network.obs_dim and act_dim are (4, 1), Pendulum-v1's observation and "
        "action sizes (3, 1); retrain it with `dvc repro`"
    )


def test_sb3_load_builds_no_more_critics_than_the_weights_hold(tmp_path: Path) -> None:
    """SAC with gSDE is the layout SB3's own load rebuilds (`algorithms.safe_load`): `data`'s
    plain values reach SB3's constructors, so the number of critics is checked against the
    weights first, and the buffers SB3 would size by `data` are made of size 1."""
    data = tiny_params()
    data["experiments"] = {
        "sac-gsde": {
            "env": "InvertedPendulum-v5",
            "algo": "sac",
            "budget": {"steps": 150},
            "policy": {"hidden": [8], "activation": "relu"},
            "hyperparams": {"learning_starts": 100, "batch_size": 32, "use_sde": True},
            "allow_nonportable_ops": ["aten::log1p"],  # gSDE's (rlrepro/numerics/ops.py)
        }
    }
    model = train_run(write_params(tmp_path / "p.yaml", data), tmp_path, "sac-gsde").model
    entries = _entries(model)
    fields = json.loads(entries["data"])
    fields["buffer_size"] = 10**12  # SB3 would allocate a replay buffer of that many rows
    fields["policy_kwargs"]["n_critics"] = 10**6
    crafted = tmp_path / "crafted.zip"
    crafted.write_bytes(checkpoint.canonical_zip(entries | {"data": json.dumps(fields).encode()}))
    env = gym.make("InvertedPendulum-v5")
    with pytest.raises(CheckpointError) as caught:
        load_actor(crafted, env)
    assert str(caught.value) == (
        f"{crafted}: `data` says 1000000 critics, `policy.pth` holds 2; retrain it with `dvc repro`"
    )
    fields["policy_kwargs"]["n_critics"] = 2
    crafted.write_bytes(checkpoint.canonical_zip(entries | {"data": json.dumps(fields).encode()}))
    obs = np.zeros((1, 4), dtype=np.float32)
    assert load_actor(crafted, env)(obs).tobytes() == load_actor(model, env)(obs).tobytes()


def test_make_videos_names_the_checkpoint_not_the_renderer(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tools.video` reads checkpoints with the same loader; a checkpoint whose weights do not
    fit is its own line, not the renderer's help."""
    from tools import video

    model, params_file = trained
    models = tmp_path / "models"
    models.mkdir()
    crafted = models / "cartpole-ppo-0.zip"
    crafted.write_bytes(checkpoint.canonical_zip(_meta_changed(_entries(model), env="Pendulum-v1")))
    args = ["--params", str(params_file), "--models", str(models), "--exp", "cartpole-ppo"]
    capsys.readouterr()
    assert video.main([*args, "--seed", "0", "--out", str(tmp_path / "videos")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {crafted}: `policy.pth`'s `mlp_extractor.policy_net.0.weight`")
    assert err.count("\n") == 1
