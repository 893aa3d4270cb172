"""Canonical checkpoints: the same trained agent always gives the same bytes.

A checkpoint is a zip of named entries, stored uncompressed (compressed bytes vary with the zlib
build) in sorted order with a fixed entry time. `rlrepro.json` holds the format version and what
the agent is; the rest is up to the algorithm. For SB3 agents the zip stays one that SB3's
`load` opens: its `system_info.txt` is dropped, and its `data` loses wall-clock values and the
memory addresses in its human-readable class descriptions (SB3 reads only `:serialized:`).

SB3 pickles what JSON cannot hold with the running interpreter (cloudpickle). Off-policy agents'
`train_freq`, a named tuple holding an enum member, pickles differently under different builds of
CPython 3.11 (3.11.2 and 3.11.7 give other bytes), so it is rewritten as the plain tuple
`(frequency, unit)` pickled with protocol 4, the same bytes on every build; SB3's `load` turns
that tuple back into its `TrainFreq` (`OffPolicyAlgorithm._convert_train_freq`).

Reading (`load`) bounds every byte before it is read: only the entries the algorithm's format
defines (`ENTRIES`), each stored and at most its limit (`ENTRY_LIMITS`, `MAX_BYTES`) as the zip's
directory declares, CRCs checked, torch files of stored records only; the weights are then
checked against `rlrepro.json` and the env (`weights`, `algorithms.mismatch`). Every failure is a
one-line `CheckpointError` naming the file (docs/resume.md, "Checkpoints read within bounds").
"""

import base64
import contextlib
import dataclasses
import io
import json
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import gymnasium as gym
import torch

from rlrepro.agents import normalize
from rlrepro.core import params
from rlrepro.core.errors import CheckpointError, ParamsError
from rlrepro.core.files import canonical_json, write_bytes

FORMAT_VERSION = 1
META_ENTRY = "rlrepro.json"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
# Entries of SB3's zip that carry the saving machine or the wall clock.
_SB3_DROPPED_ENTRIES = ("system_info.txt",)
# Keys of SB3's `data` that hold wall-clock times (start_time; episode infos carry `t`).
_SB3_VOLATILE_KEYS = ("start_time", "ep_info_buffer", "ep_success_buffer")
# SB3 describes each pickled class with the reprs of its members: "<function f at 0x7f...>".
_MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")

# The entries of each algorithm's checkpoint: those it always holds, and those it may hold
# (VecNormalize's statistics; SAC's entropy optimizer when its coefficient is learned). SB3's
# `load` needs every torch file its algorithm saves, optimizers included.
_SB3_ENTRIES = (META_ENTRY, "_stable_baselines3_version", "data", "policy.pth")
_SB3_OPTIONAL = (normalize.ENTRY,)
_ON_POLICY = ((*_SB3_ENTRIES, "policy.optimizer.pth", "pytorch_variables.pth"), _SB3_OPTIONAL)
_ACTOR_CRITIC = (
    (*_SB3_ENTRIES, "actor.optimizer.pth", "critic.optimizer.pth", "pytorch_variables.pth"),
    _SB3_OPTIONAL,
)
ENTRIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "reinforce": ((META_ENTRY, "policy.pth", "policy.optimizer.pth", "rng.pth"), ()),
    "ppo": _ON_POLICY,
    "a2c": _ON_POLICY,
    "dqn": _ON_POLICY,
    "sac": (_ACTOR_CRITIC[0], (*_SB3_OPTIONAL, "ent_coef_optimizer.pth")),
    "td3": _ACTOR_CRITIC,
    "ddpg": _ACTOR_CRITIC,
}
_KNOWN_ENTRIES = frozenset(name for kinds in ENTRIES.values() for names in kinds for name in names)
# The most bytes a checkpoint file may have, and so its entries together (they are stored):
# 150 times the largest the pipelines write (1.7 MB, SAC with 256-256 layers).
MAX_BYTES = 256 * 2**20
# The most bytes of each entry that is not a torch file (those may have up to `MAX_BYTES`).
ENTRY_LIMITS = {
    META_ENTRY: 64 * 2**10,
    "_stable_baselines3_version": 64,
    "data": 4 * 2**20,
    normalize.ENTRY: 4 * 2**20,
}
# Zip flags that change nothing of how an entry is read: sizes after the data, UTF-8 names.
_HARMLESS_FLAGS = 0x08 | 0x800
# What the zip module raises on a damaged zip (a bad CRC, a cut file, a malformed directory, a
# version or method it does not read).
_ZIP_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, struct.error, NotImplementedError)
# A zip's end record (without zip64: checkpoints are smaller than 4 GiB), and its size.
_END = "<4s4H2LH"
_END_SIZE = struct.calcsize(_END)


@dataclasses.dataclass(frozen=True)
class Network:
    """`rlrepro.json`'s `network`: the policy's layers, and REINFORCE's Gaussian head."""

    hidden: tuple[int, ...] = dataclasses.field(metadata={"min": 1})
    activation: str
    obs_dim: int | None = dataclasses.field(default=None, metadata={"min": 1})
    act_dim: int | None = dataclasses.field(default=None, metadata={"min": 1})
    std_eps: float | None = None


@dataclasses.dataclass(frozen=True)
class Meta:
    """`rlrepro.json`: what the agent is (`format` is checked first, on its own)."""

    format: int
    algo: str
    env: str
    experiment: str
    seed: int
    network: Network


def canonical_zip(entries: dict[str, bytes]) -> bytes:
    """Zip `entries` with sorted names, no compression and fixed times and permissions."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever the saving OS
            archive.writestr(info, entries[name])
    return buffer.getvalue()


def write(path: Path, meta: dict[str, Any], entries: dict[str, bytes]) -> None:
    """Write a checkpoint: `meta` (plus the format version) as `rlrepro.json`, and `entries`."""
    header = canonical_json({"format": FORMAT_VERSION, **meta}).encode("utf-8")
    write_bytes(path, canonical_zip({META_ENTRY: header, **entries}))


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read within bounds (`load`): its file, its checked `rlrepro.json`, and its
    entries by name, every one a name its algorithm's format defines, its CRC checked."""

    path: Path
    meta: dict[str, Any]
    entries: dict[str, bytes]


def _limit(name: str) -> int:
    """The most bytes entry `name` may hold."""
    return ENTRY_LIMITS.get(name, MAX_BYTES)


def _refuse(path: Path, what: str) -> CheckpointError:
    """The one-line error of checkpoint `path` for `what` is wrong with it."""
    return CheckpointError(f"{path}: {what}; retrain it with `dvc repro`")


def _first_line(err: BaseException, width: int = 160) -> str:
    """`err`'s message, its first line cut to `width` characters (or its type's name)."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text if len(text) <= width else text[: width - 3] + "..."


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[tuple[zipfile.ZipFile, int]]:
    """The zip of checkpoint `path` and its size on disk, at most `MAX_BYTES`, whose end record
    ends the file (`_check_end`); what the zip module raises on a damaged file, here or in the
    `with` body, becomes a `CheckpointError`."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_BYTES:
                raise _refuse(path, f"{size:,} bytes, more than the {MAX_BYTES:,} allowed")
            _check_end(handle, size, path)
            with zipfile.ZipFile(handle) as archive:
                yield archive, size
    except _ZIP_ERRORS as err:
        raise _refuse(path, f"not a readable zip ({_first_line(err)})") from None


def _check_end(handle: BinaryIO, size: int, path: Path) -> None:
    """That the file `handle` (`size` bytes) ends with the zip's end record, no comment, right
    after the directory it points at. The zip module is more lenient: it looks for an end record
    anywhere in the last 64 KiB (a cut checkpoint would show it the zip of a torch file inside)
    and accepts bytes before the zip."""
    handle.seek(max(size - _END_SIZE, 0))
    end = handle.read(_END_SIZE)
    if len(end) == _END_SIZE:
        signature, *_, directory_size, directory_offset, comment = struct.unpack(_END, end)
        ends = directory_offset + directory_size == size - _END_SIZE
        if (signature, comment, ends) == (b"PK\x05\x06", 0, True):
            return
    raise _refuse(path, "not a whole zip (no end record at its end: cut short or added to)")


def _directory(archive: zipfile.ZipFile, size: int, path: Path) -> dict[str, zipfile.ZipInfo]:
    """The entries of `archive` by name, once each checked against the zip's directory, before
    any is read: a name some algorithm's checkpoint holds, once; stored, not encrypted; at most
    its limit (`ENTRY_LIMITS`), and all of them together at most the file's `size`."""
    infos: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename.encode("unicode_escape").decode("ascii")  # one line, whatever it holds
        if name not in _KNOWN_ENTRIES:
            raise _refuse(path, f"entry `{name}` is not one a checkpoint holds")
        if name in infos:
            raise _refuse(path, f"entry `{name}` is in the zip twice")
        if info.compress_type != zipfile.ZIP_STORED:
            raise _refuse(path, f"entry `{name}` is compressed; a checkpoint's entries are stored")
        if info.flag_bits & ~_HARMLESS_FLAGS:
            flags = f"{info.flag_bits:#x}"
            raise _refuse(
                path, f"entry `{name}` has zip flags {flags}, which checkpoints never set"
            )
        if info.file_size > _limit(name) or info.compress_size != info.file_size:
            raise _refuse(
                path,
                f"entry `{name}` declares {info.file_size:,} bytes "
                f"({info.compress_size:,} in the file), at most {_limit(name):,} allowed",
            )
        infos[name] = info
    if META_ENTRY not in infos:
        raise _refuse(path, f"not an rlrepro checkpoint (no `{META_ENTRY}` entry)")
    if sum(info.file_size for info in infos.values()) > size:
        raise _refuse(path, "its entries declare more bytes than the file holds")
    return infos


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    """Entry `info` of `archive`, never more bytes than the directory declares (the zip module
    stops there) and its CRC checked (the zip module checks it on reaching the end)."""
    with archive.open(info) as handle:
        data = handle.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise _refuse(path, f"entry `{info.filename}` is cut short")
    return data


def _json(data: bytes, name: str, path: Path) -> Any:
    """The JSON of entry `name` of checkpoint `path`."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as err:  # a UnicodeDecodeError is a ValueError
        raise _refuse(path, f"entry `{name}` is not JSON ({_first_line(err)})") from None


def _meta(data: bytes, path: Path) -> dict[str, Any]:
    """`rlrepro.json` (`data`) of checkpoint `path`, checked against `Meta`, its env id known
    to Gymnasium."""
    meta = _json(data, META_ENTRY, path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise CheckpointError(
            f"{path}: checkpoint format {found!r}, "
            f"this code reads {FORMAT_VERSION}; retrain with `dvc repro`"
        )
    try:
        checked = params.build(Meta, meta, META_ENTRY)
        network = checked.network
        if checked.algo not in params.ALGORITHMS:
            raise ParamsError(f"{META_ENTRY}.algo: unknown algorithm {checked.algo!r}")
        if network.activation not in params.ACTIVATIONS:
            raise ParamsError(
                f"{META_ENTRY}.network.activation: unknown activation {network.activation!r}"
            )
        if checked.algo == "reinforce" and None in (
            network.obs_dim,
            network.act_dim,
            network.std_eps,
        ):
            raise ParamsError(f"{META_ENTRY}.network: reinforce needs obs_dim, act_dim, std_eps")
        if checked.env not in gym.registry:
            raise ParamsError(f"{META_ENTRY}.env: {checked.env!r} is no env id Gymnasium knows")
    except ParamsError as err:
        raise _refuse(path, str(err)) from None
    return meta


def read_meta(path: Path) -> dict[str, Any]:
    """The `rlrepro.json` entry of checkpoint `path`, checked against `Meta`, read within bounds
    (`_directory`): nothing else of the zip is read.

    :raises CheckpointError: when `path` is not a zip with that entry, holds an entry no
        checkpoint holds or one beyond its limit, is of another format, or a field is missing or
        malformed (one line naming the file and the field).
    """
    with _reading(path) as (archive, size):
        return _meta(_read(archive, _directory(archive, size, path)[META_ENTRY], path), path)


def load(path: Path) -> Checkpoint:
    """Checkpoint `path`, read within bounds: the directory checked first (`_directory`), then
    `rlrepro.json`, then the entries its algorithm's checkpoint holds (`ENTRIES`: all that it
    needs, nothing else), each read whole with its CRC checked; JSON entries parse, and each
    torch file is torch's zip of stored records that fit in it (`_check_torch_zip`).

    At most `MAX_BYTES` (the file's size) are read, once; nothing is unpickled.

    :raises CheckpointError: one line naming `path` and what is wrong.
    """
    with _reading(path) as (archive, size):
        infos = _directory(archive, size, path)
        meta = _meta(_read(archive, infos[META_ENTRY], path), path)
        required, optional = ENTRIES[meta["algo"]]
        missing = sorted(set(required) - set(infos))
        if missing:
            names = ", ".join(f"`{name}`" for name in missing)
            raise _refuse(path, f"no {names} entr{'y' if len(missing) == 1 else 'ies'}")
        extra = sorted(set(infos) - set(required) - set(optional))
        if extra:
            raise _refuse(path, f"entry `{extra[0]}` is not one a {meta['algo']} checkpoint holds")
        entries = {name: _read(archive, info, path) for name, info in infos.items()}
    for name, data in entries.items():
        if (name.endswith(".json") or name == "data") and not isinstance(
            _json(data, name, path), dict
        ):
            raise _refuse(path, f"entry `{name}` is no JSON object")
        elif name.endswith(".pth"):
            _check_torch_zip(data, name, path)
    return Checkpoint(path, meta, entries)


def _check_torch_zip(data: bytes, name: str, path: Path) -> None:
    """That entry `name` (`data`) is torch's zip format (what `torch.save` writes) whose records
    are stored and fit in it, so that `torch.load` allocates no more than `data`'s size for them
    (torch would read a deflated record of any declared size, and its older format allocates
    what its header declares)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            records = inner.infolist()
    except _ZIP_ERRORS as err:
        raise _refuse(path, f"entry `{name}` is no torch file ({_first_line(err)})") from None
    stored = all(record.compress_type == zipfile.ZIP_STORED for record in records)
    if not data.startswith(b"PK\x03\x04") or not stored:
        raise _refuse(path, f"entry `{name}` is no torch file of stored records")
    if sum(record.file_size for record in records) > len(data):
        raise _refuse(path, f"entry `{name}`'s records declare more bytes than it holds")


def _torch_reason(err: Exception) -> str:
    """What `torch.load` found wrong, without its advice on `weights_only` around it."""
    _, found, after = str(err).partition("WeightsUnpickler error:")
    lines = [line.strip() for line in after.splitlines() if line.strip()] if found else []
    return lines[0][:160] if lines else _first_line(err)


def weights(loaded: Checkpoint, name: str = "policy.pth") -> dict[str, torch.Tensor]:
    """The state dict in entry `name` of `loaded`, read by `torch.load(weights_only=True)` from
    its bounded bytes: tensors by name, each dense, float32 (as SB3 and REINFORCE train them),
    contiguous and finite, together no more values than the entry's bytes hold (a crafted pickle
    could make many large views of one small storage).

    :raises CheckpointError: when the entry is missing or is no such state dict.
    """
    data = entry(loaded.entries, name, loaded.path)
    try:
        state = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as err:  # torch's zip reader and its unpickler raise many kinds
        raise _refuse(
            loaded.path, f"`{name}` holds no readable weights ({_torch_reason(err)})"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise _refuse(loaded.path, f"`{name}` holds no state dict of tensors by name")
    for key, tensor in state.items():
        if tensor.layout != torch.strided or tensor.is_meta or tensor.dtype != torch.float32:
            raise _refuse(loaded.path, f"`{name}`'s `{key}` is no dense float32 tensor")
        if not tensor.is_contiguous():  # a view that repeats its storage (a stride of 0)
            raise _refuse(loaded.path, f"`{name}`'s `{key}` is not contiguous")
    if sum(tensor.numel() * 4 for tensor in state.values()) > len(data):  # views of one storage
        raise _refuse(loaded.path, f"`{name}`'s tensors hold more values than its bytes")
    for key, tensor in state.items():
        if not bool(torch.isfinite(tensor).all()):
            raise _refuse(loaded.path, f"`{name}`'s `{key}` holds values that are not finite")
    return dict(state)


def entry(entries: dict[str, bytes], name: str, path: Path) -> bytes:
    """Entry `name` of checkpoint `path`'s `entries`; :raises CheckpointError: naming both
    when it has none."""
    if name not in entries:
        raise _refuse(path, f"no `{name}` entry")
    return entries[name]


def read_entries(path: Path) -> dict[str, bytes]:
    """Every entry of checkpoint `path` by name, read within bounds (`load`)."""
    return load(path).entries


def sb3_entries(saved_zip: bytes) -> dict[str, bytes]:
    """The entries of an SB3 `model.save` zip, without machine info or wall-clock values."""
    with zipfile.ZipFile(io.BytesIO(saved_zip)) as archive:
        entries = {
            name: archive.read(name)
            for name in archive.namelist()
            if name not in _SB3_DROPPED_ENTRIES
        }
    data = json.loads(entries["data"])
    for key in _SB3_VOLATILE_KEYS:
        data.pop(key, None)
    for value in data.values():
        # A class's `__slotnames__` appear once pickle has met an instance of it (copyreg
        # caches them on the class): after a snapshot, not before.
        if isinstance(value, dict):
            value.pop("__slotnames__", None)
    if isinstance(data.get("train_freq"), dict):
        data["train_freq"] = _plain_train_freq(data["train_freq"])
    text = json.dumps(data, indent=4, sort_keys=True)
    entries["data"] = _MEMORY_ADDRESS.sub("", text).encode("utf-8")
    return entries


def _plain_train_freq(entry: dict[str, Any]) -> dict[str, Any]:
    """SB3's serialized `TrainFreq` as the plain tuple `(frequency, "step" | "episode")`, pickled
    with a fixed protocol (no class or enum by reference: bytes independent of the interpreter)."""
    train_freq = pickle.loads(base64.b64decode(entry[":serialized:"]))  # our own, just saved
    plain = (int(train_freq.frequency), str(train_freq.unit.value))
    serialized = base64.b64encode(pickle.dumps(plain, protocol=4)).decode()
    return {":type:": "<class 'tuple'>", ":serialized:": serialized}
