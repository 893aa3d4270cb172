"""Write the keys table of docs/experiments.md from the params schema (`rlrepro.core.params`).

    python -m tools.schema_doc [--check]

The table sits between the two marker lines `BEGIN`/`END` of the page; with `--check`, nothing is
written and the exit code is 1 when the page is out of date.
"""

import argparse
import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any

from rlrepro.core import params
from rlrepro.core.files import write_bytes

PAGE = Path(__file__).resolve().parents[1] / "docs" / "experiments.md"
BEGIN = "<!-- keys: written by `python -m tools.schema_doc` from rlrepro/core/params.py -->"
END = "<!-- end of keys -->"


def keys_table() -> str:
    """The Markdown table of every params key, from the schema's declarations."""
    rows = ["| key | type | accepted | default | meaning |", "| --- | --- | --- | --- | --- |"]
    scalar = {
        key: f"| `{key}` | {' | '.join(map(_cell, row))} |" for key, row in params.SCALARS.items()
    }
    rows += [scalar["root"], scalar["seeds"]]
    for name, cls in params.SCHEMA.items():
        rows += _field_rows(name, cls)
    rows.append(scalar["experiments"].replace("`experiments`", "`experiments.<name>`", 1))
    rows += _field_rows("experiments.<name>", params.Experiment)
    for name, hyper in params.HYPERPARAMS.items():
        kind = params.KIND_TEXT[hyper.kind] + (" or null" if hyper.nullable else "")
        accepted = "" if hyper.kind in ("boolean", "null", "mapping") else hyper.range.text()
        rows.append(
            f"| `experiments.<name>.hyperparams.{name}` | {_cell(kind)} | {_cell(accepted)} | "
            f"the algorithm's | {_cell(hyper.doc)} |"
        )
    return "\n".join(rows) + "\n"


def _field_rows(prefix: str, cls: type) -> list[str]:
    rows = []
    hints = typing.get_type_hints(cls)
    for declared in dataclasses.fields(cls):
        path, hint, meta = f"{prefix}.{declared.name}", hints[declared.name], declared.metadata
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        nested = inner[0] if typing.get_origin(hint) is types.UnionType else hint
        if declared.default is dataclasses.MISSING:
            default = "required"
        elif declared.default is None:
            default = "none"
        else:
            default = f"`{declared.default}`" if declared.default != () else "`[]`"
        accepted = _accepted_text(hint, meta)
        rows.append(
            f"| `{path}` | {_type_text(hint)} | {_cell(accepted)} | {default} | "
            f"{_cell(meta['doc'])} |"
        )
        if dataclasses.is_dataclass(nested):
            rows += _field_rows(path, nested)  # type: ignore[arg-type]
    return rows


def _type_text(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is types.UnionType:
        (inner,) = (a for a in typing.get_args(hint) if a is not type(None))
        return f"{_type_text(inner)} or null"
    if origin is tuple:
        return f"list of {_type_text(typing.get_args(hint)[0])}s"
    names = {int: "integer", float: "number", bool: "boolean", str: "text"}
    return names.get(hint, "mapping")


def _accepted_text(hint: Any, meta: Any) -> str:
    if meta["choices"]:
        return ", ".join(meta["choices"])
    args = typing.get_args(hint)
    base = args[0] if typing.get_origin(hint) is tuple else hint
    if base in (int, float):
        finite = "finite, " if base is float else ""
        return f"{finite}{meta['range'].text()}"
    if base is str and typing.get_origin(hint) is tuple:
        return "ATen op names (`aten::<op>`)"
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(page: str) -> str:
    """`page` with the text between `BEGIN` and `END` replaced by the schema's keys table.

    :raises ValueError: when the page lacks either marker.
    """
    head, begin, rest = page.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"{PAGE}: expected the marker lines {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n{keys_table()}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Write the table into docs/experiments.md (`--check`: only compare). :return: exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the page is stale")
    args = parser.parse_args(argv)
    page = PAGE.read_text(encoding="utf-8")
    wanted = render(page)
    if args.check:
        if wanted != page:
            print(f"{PAGE.name} is out of date: run `python -m tools.schema_doc`", file=sys.stderr)
            return 1
        return 0
    if wanted != page:
        write_bytes(PAGE, wanted.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
