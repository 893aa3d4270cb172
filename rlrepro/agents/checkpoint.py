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
"""

import base64
import dataclasses
import io
import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

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


def read_meta(path: Path) -> dict[str, Any]:
    """The `rlrepro.json` entry of checkpoint `path`, checked against `Meta`.

    :raises CheckpointError: when `path` is not a zip with that entry, is of another format, or
        a field is missing or malformed (one line naming the file and the field).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            meta: dict[str, Any] = json.loads(archive.read(META_ENTRY))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"{path}: not an rlrepro checkpoint ({err}); retrain it with `dvc repro`"
        ) from None
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
    except ParamsError as err:
        raise CheckpointError(f"{path}: {err}; retrain it with `dvc repro`") from None
    return meta


def entry(entries: dict[str, bytes], name: str, path: Path) -> bytes:
    """Entry `name` of checkpoint `path`'s `entries`; :raises CheckpointError: naming both
    when it has none."""
    if name not in entries:
        raise CheckpointError(f"{path}: no `{name}` entry; retrain it with `dvc repro`")
    return entries[name]


def read_entries(path: Path) -> dict[str, bytes]:
    """Every entry of checkpoint `path` by name."""
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


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
