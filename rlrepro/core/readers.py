"""Reading the files a stage takes in, each checked as it is read: CSVs against their declared
columns, JSON against its declared shape, every file against a size limit.

Those files may come from anyone (another stage, a remote, a colleague, a disk that failed), so a
file that is missing, too large, not UTF-8, empty, header-only, cut short, with a row of too few
fields, text or a non-finite value where a number belongs, or a row count other than the one
expected is refused with one `StageError` line naming the file, what is wrong and what is
expected; it is never used silently.

CSVs are checked line by line with our own code (the pipeline's CSVs hold numbers only, written
without quoting, so a comma always ends a field), then parsed by pandas: pandas alone would fill a
short row with NaN, take a partial last line as a row, skip blank lines and turn a column with one
word in it into strings; and the parse by pandas, of the same text as before, keeps every number
that the stages compute with, and so every output's bytes, exactly as they were.
"""

import dataclasses
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rlrepro.core.errors import StageError

MIB = 1 << 20
# The largest file of each kind a stage reads: far above what any params make (a curve of a
# million episodes is about 30 MiB), far below what would exhaust the memory.
CSV_LIMIT = 256 * MIB
JSON_LIMIT = 16 * MIB
TEXT_LIMIT = 4 * MIB

# What to do about a damaged output of an earlier stage.
REMAKE = "remake it with `dvc repro` (or restore it with `dvc checkout`)"

_INTEGER = re.compile(r"-?[0-9]{1,18}")
_DECIMAL = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,4})?")


def show(text: str, width: int = 40) -> str:
    """`text` quoted on one line, cut to about `width` characters."""
    shown = repr(text[:width])
    return shown + "..." if len(text) > width else shown


def _a(what: str) -> str:
    """`what` with its indefinite article: "an evaluation CSV", "a learning curve CSV"."""
    return f"{'an' if what[:1] in 'aeiou' else 'a'} {what}"


def read_bytes(path: Path, what: str, limit: int, remedy: str = REMAKE) -> bytes:
    """The bytes of `path`, a `what` (e.g. "evaluation CSV"), at most `limit` of them.

    :raises StageError: when it is missing, not a regular file, unreadable or larger than
        `limit` (checked before reading, and while reading, should it grow).
    """
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise StageError(f"{path}: not a file; expected the {what}; {remedy}")
        if size > limit:
            raise StageError(_too_large(path, what, size, limit))
        with path.open("rb") as file:
            data = file.read(limit + 1)
    except FileNotFoundError:
        raise StageError(f"{path}: no such {what}; run `dvc repro`, which writes it") from None
    except OSError as err:
        raise StageError(f"{path}: cannot read the {what} ({err.strerror}); {remedy}") from None
    if len(data) > limit:
        raise StageError(_too_large(path, what, len(data), limit))
    return data


def _too_large(path: Path, what: str, size: int, limit: int) -> str:
    return (
        f"{path}: {size:,} bytes, more than the {limit // MIB} MiB {_a(what)} may have; "
        "it is not one this pipeline wrote"
    )


def read_text(path: Path, what: str, limit: int = TEXT_LIMIT, remedy: str = REMAKE) -> str:
    """The text of `path` (UTF-8), a `what`, at most `limit` bytes.

    :raises StageError: as `read_bytes` does, or when the bytes are not UTF-8.
    """
    data = read_bytes(path, what, limit, remedy)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise StageError(
            f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
            f"expected the {what}; {remedy}"
        ) from None


@dataclasses.dataclass(frozen=True)
class Column:
    """A declared CSV column.

    :param name: its header.
    :param kind: `int` (an integer) or `float` (a finite number).
    :param low: the smallest value accepted, if any.
    :param ordered: whether each row's value is at least the previous row's.
    """

    name: str
    kind: type
    low: float | None = None
    ordered: bool = False


@dataclasses.dataclass(frozen=True)
class Rows:
    """How many data rows a CSV must have: exactly `exact`, or at least `least`.

    :param why: where the expected count comes from, for the error (e.g. "params
        `evaluate.episodes`").
    :param none: what a header without rows means, for the error (default: a damaged file).
    """

    exact: int | None = None
    least: int = 1
    why: str = ""
    none: str = ""


def read_csv(
    path: Path,
    what: str,
    columns: Sequence[Column],
    rows: Rows = Rows(),
    limit: int = CSV_LIMIT,
) -> pd.DataFrame:
    """The CSV `path` (a `what`, e.g. "evaluation CSV"), checked line by line against `columns`
    and `rows`, then parsed by pandas with the declared dtypes.

    :raises StageError: naming the file, the line and column, what is wrong and what is
        expected, when the file is missing, too large, not UTF-8, empty, has another header, a
        blank line, a row with another number of fields, a partial last line, a value that is
        not an integer or not a finite number, below its `low` or out of order, or a row count
        outside `rows`.
    """
    text = read_text(path, what, limit)
    header = ",".join(c.name for c in columns)
    expected = f"expected {_a(what)} with header `{header}`"
    if not text:
        raise StageError(f"{path}: empty; {expected}; {REMAKE}")
    lines = text.split("\n")
    if lines[0] != header:
        raise StageError(f"{path}: header {show(lines[0])}; {expected}; {REMAKE}")
    if lines[-1]:
        raise StageError(
            f"{path}: line {len(lines)} is cut short (no line end): the file is truncated; {REMAKE}"
        )
    body = lines[1:-1]
    _check_count(path, what, len(body), rows)
    last = [-math.inf] * len(columns)
    for number, line in enumerate(body, start=2):
        fields = line.split(",")
        if len(fields) != len(columns):
            raise StageError(
                f"{path}: line {number} has {len(fields)} field(s), expected {len(columns)} "
                f"(`{header}`): the file is truncated or damaged; {REMAKE}"
            )
        for index, (column, cell) in enumerate(zip(columns, fields, strict=True)):
            value = _value(path, number, column, cell)
            if column.ordered and value < last[index]:
                raise StageError(
                    f"{path}: line {number}, column `{column.name}`: {cell} after "
                    f"{last[index]:g}; expected values in order; {REMAKE}"
                )
            last[index] = value
    dtypes = {c.name: "int64" if c.kind is int else "float64" for c in columns}
    return pd.read_csv(io.StringIO(text), dtype=dtypes)


def _check_count(path: Path, what: str, count: int, rows: Rows) -> None:
    why = f" ({rows.why})" if rows.why else ""
    if count == 0 and (rows.least > 0 or rows.exact):
        meaning = rows.none or f"expected {_a(what)} with rows; {REMAKE}"
        raise StageError(f"{path}: a header and no rows; {meaning}")
    if rows.exact is not None and count != rows.exact:
        raise StageError(
            f"{path}: {count} row(s), expected {rows.exact}{why}: the file is truncated or "
            f"from other params; {REMAKE}"
        )
    if count < rows.least:
        raise StageError(
            f"{path}: {count} row(s), expected at least {rows.least}{why}: the file is truncated "
            f"or from other params; {REMAKE}"
        )


def _value(path: Path, number: int, column: Column, cell: str) -> float:
    """The number in `cell`, checked against `column`."""
    where = f"{path}: line {number}, column `{column.name}`"
    if column.kind is int:
        if not _INTEGER.fullmatch(cell):
            raise StageError(f"{where}: {show(cell)}, expected an integer; {REMAKE}")
        value: float = int(cell)
    else:
        value = float(cell) if _DECIMAL.fullmatch(cell) else math.nan
        if not math.isfinite(value):
            raise StageError(f"{where}: {show(cell)}, expected a finite number; {REMAKE}")
    if column.low is not None and value < column.low:
        raise StageError(f"{where}: {cell}, expected a value >= {column.low:g}; {REMAKE}")
    return value


# A JSON shape: a type (`int`; `float`: any finite number; `str`; `bool`; `dict`; `list`), a
# `dict` of key -> shape (keys ending in `?` optional; key `*`: every key), or a one-item
# `list` [shape] (every item), or a tuple (shape, None): the shape or null.
Shape = Any


def read_json(
    path: Path,
    what: str,
    shape: Shape = dict,
    limit: int = JSON_LIMIT,
    remedy: str = REMAKE,
) -> Any:
    """The JSON value in `path` (a `what`), checked against `shape`; every number in it,
    declared or not, finite.

    :raises StageError: naming the file and the key, when the file is missing, too large, not
        UTF-8, not JSON, nested too deeply, holds NaN or an infinity, or differs from `shape`.
    """
    text = read_text(path, what, limit, remedy)
    try:
        value = json.loads(text, parse_constant=_no_constant)
        _check(value, shape, path, "", what, remedy)
    except json.JSONDecodeError as err:
        raise StageError(
            f"{path}: not valid JSON ({err.msg}, line {err.lineno} column {err.colno}); "
            f"expected the {what}; {remedy}"
        ) from None
    except RecursionError:
        raise StageError(f"{path}: nested too deeply; expected the {what}; {remedy}") from None
    except ValueError as err:  # NaN or Infinity (`_no_constant`)
        raise StageError(f"{path}: {err}; expected the {what}; {remedy}") from None
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} where a finite number belongs")


def _check(value: Any, shape: Shape, path: Path, where: str, what: str, remedy: str) -> None:
    """Check `value` (at key path `where`) against `shape`, and its numbers finite."""
    place = f"`{where}`" if where else "the top level"
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise StageError(
                f"{path}: {place} is {_kind(value)}, expected an object (the {what}); {remedy}"
            )
        for key, inner in shape.items():
            name = key.rstrip("?")
            if key == "*":
                for item_key, item in value.items():
                    _check(item, inner, path, _join(where, item_key), what, remedy)
            elif name in value:
                _check(value[name], inner, path, _join(where, name), what, remedy)
            elif not key.endswith("?"):
                raise StageError(
                    f"{path}: no `{_join(where, name)}`; expected the {what}; {remedy}"
                )
        if "*" not in shape:
            for key in set(value) - {k.rstrip("?") for k in shape}:
                _check(value[key], Any, path, _join(where, key), what, remedy)
        return
    if isinstance(shape, list):
        if not isinstance(value, list):
            raise StageError(
                f"{path}: {place} is {_kind(value)}, expected a list (the {what}); {remedy}"
            )
        for index, item in enumerate(value):
            _check(item, shape[0], path, f"{where}[{index}]", what, remedy)
        return
    if isinstance(shape, tuple):  # (shape, None): the shape, or null
        if value is None and None in shape:
            return
        shape = shape[0]
    if shape is not Any and not _is(value, shape):
        expected = {int: "an integer", float: "a finite number"}.get(shape, f"a {shape.__name__}")
        raise StageError(
            f"{path}: {place} is {_kind(value)}, expected {expected} (the {what}); {remedy}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise StageError(f"{path}: {place} is {value}, expected a finite number; {remedy}")
    if isinstance(value, (dict, list)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _check(item, Any, path, _join(where, str(key)), what, remedy)


def _is(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({show(value)})"
    return "an object" if isinstance(value, dict) else "a list"
