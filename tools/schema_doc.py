"""Write the keys table of docs/experiments.md from the params schema (`params.keys_table`).

    python -m tools.schema_doc [--check]

The table sits between the two marker lines `BEGIN`/`END` of the page; with `--check`, nothing is
written and the exit code is 1 when the page is out of date.
"""

import argparse
import sys
from pathlib import Path

from rlrepro.core import params
from rlrepro.core.files import write_bytes

PAGE = Path(__file__).resolve().parents[1] / "docs" / "experiments.md"
BEGIN = "<!-- keys: written by `python -m tools.schema_doc` from rlrepro/core/params.py -->"
END = "<!-- end of keys -->"


def render(page: str) -> str:
    """`page` with the text between `BEGIN` and `END` replaced by the schema's keys table.

    :raises ValueError: when the page lacks either marker.
    """
    head, begin, rest = page.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"{PAGE}: expected the marker lines {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n{params.keys_table()}{END}{tail}"


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
