"""Training traces: short hashes of the policy's parameters and the latest observations.

Recorded after every `every`-th update (and after the last), so that two runs of the same
training can be compared and the first update at which they part can be named.
"""

import csv
import hashlib
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np
import torch

TRACE_HEADER = ("update", "step", "params", "obs")


class TracePoint(NamedTuple):
    """The state after update `update`, at global env step `step`, as two short hashes."""

    update: int
    step: int
    params: str
    obs: str


# A dtype's name, as str() gives it: str() of a dtype is slow, and a trace hashes every
# parameter of the policy after every update.
_DTYPE_NAMES: dict[np.dtype[Any], str] = {}


def short_hash(arrays: Iterable[np.ndarray]) -> str:
    """The first 16 hex digits of the sha256 of the arrays' dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        dtype = contiguous.dtype
        name = _DTYPE_NAMES.get(dtype) or _DTYPE_NAMES.setdefault(dtype, str(dtype))
        digest.update(f"{name}{contiguous.shape}".encode())
        digest.update(contiguous.data)  # its buffer: the same bytes as tobytes(), not copied
    return digest.hexdigest()[:16]


class Trace:
    """Collects `TracePoint`s every `every` updates.

    :param every: record update 0, `every`, 2 * `every`, ... (and any `force`d one).
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self.points: list[TracePoint] = []

    def record(
        self,
        update: int,
        step: int,
        params: Iterable[torch.Tensor | np.ndarray],
        obs: Any,
        force: bool = False,
    ) -> None:
        """Hash `params` (tensors, or arrays of their values) and `obs` (an array, or a dict of
        them) if `update` is due or `force`d."""
        due = force or update % self.every == 0
        if not due or (self.points and self.points[-1].update == update):
            return
        values = (p.detach().numpy() if isinstance(p, torch.Tensor) else p for p in params)
        weights = short_hash(values)
        arrays = [obs[k] for k in sorted(obs)] if isinstance(obs, dict) else [np.asarray(obs)]
        self.points.append(TracePoint(update, step, weights, short_hash(arrays)))

    def __getstate__(self) -> dict[str, Any]:
        """For a snapshot: the points as plain tuples, which pickle faster than named ones."""
        return {"every": self.every, "points": [tuple(point) for point in self.points]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.every = state["every"]
        self.points = [TracePoint(*point) for point in state["points"]]


def parse(text: str) -> list[TracePoint]:
    """The points of a trace CSV's text (header `TRACE_HEADER`), as training wrote them.

    :raises ValueError: naming the line, when the text is not a whole trace.
    """
    rows = list(csv.reader(text.splitlines()))
    if not rows or tuple(rows[0]) != TRACE_HEADER:
        raise ValueError(f"not a training trace: expected the header {','.join(TRACE_HEADER)}")
    points = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(TRACE_HEADER) or not (row[0].isdigit() and row[1].isdigit()):
            raise ValueError(
                f"not a training trace: line {number} is not `{','.join(TRACE_HEADER)}`"
            )
        points.append(TracePoint(int(row[0]), int(row[1]), row[2], row[3]))
    return points


def first_parting(a: list[TracePoint], b: list[TracePoint]) -> TracePoint | None:
    """The first point of `a` whose update differs from `b`'s (or is missing there), else None."""
    for left, right in zip(a, b, strict=False):
        if left != right:
            return left
    return a[len(b)] if len(a) > len(b) else (b[len(a)] if len(b) > len(a) else None)
