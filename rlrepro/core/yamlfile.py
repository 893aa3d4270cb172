"""Reading a YAML file within limits: its size, its nesting depth, its aliases and the number of
values they expand to, so that a file of a few bytes cannot stand for a billion values.

`load` returns plain data (mappings, lists, strings, numbers, booleans, null, dates) or raises
`ParamsError` with one line naming the file and what is wrong. `short` renders any value for
an error message in a few dozen characters, whatever its size.
"""

import reprlib
from pathlib import Path
from typing import Any

import yaml

from rlrepro.core.errors import ParamsError

# The largest params file read (the committed ones are under 5 kB): 1 MiB of text holds
# thousands of experiments, and more is a file written by mistake.
MAX_FILE_BYTES = 2**20
# The deepest nesting of mappings and lists, aliases expanded (the schema nests 5 deep:
# experiments.<name>.hyperparams.learning_rate.start).
MAX_DEPTH = 32
# The most aliases (`*name`) in one file: sharing a block between experiments needs a few.
MAX_ALIASES = 1000
# The most values (scalars, mappings, lists) the document stands for, aliases expanded: an alias
# bomb (`a: &a [x, x]`, `b: &b [*a, *a]`, ...) doubles this at each line.
MAX_VALUES = 100_000

# The rendering of values in messages: a few elements of each container, strings and numbers cut.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxlong, _REPR.maxother = 2, 40, 40, 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
# The longest rendering of a value in a message.
MAX_SHOWN = 80


def short(value: Any) -> str:
    """`repr(value)` cut to at most `MAX_SHOWN` characters, in time and memory bounded whatever
    the value (a huge list, a shared or recursive structure)."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[: MAX_SHOWN - 3]}..."


def load(path: Path) -> Any:
    """The YAML document in `path`, as plain data.

    :raises ParamsError: one line naming `path`: missing, too large, not UTF-8, not YAML (with
        the line and column), a key twice in one mapping, too deep, too many aliases or values.
    """
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ParamsError(f"{path}: no such params file")
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file") from None
    except OSError as err:
        raise ParamsError(f"{path}: cannot read it ({err.strerror or err})") from None
    if max(size, len(data)) > MAX_FILE_BYTES:
        raise ParamsError(
            f"{path}: {max(size, len(data)):,} bytes, over the {MAX_FILE_BYTES:,} a params file "
            "may have"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParamsError(
            f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
            "a params file is YAML in UTF-8"
        ) from None
    try:
        return _parse(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(filter(None, (err.context, err.problem)))
        raise ParamsError(f"{where}: not valid YAML: {_one_line(what)}") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as err:
        raise ParamsError(f"{path}: not valid YAML: {_one_line(str(err))}") from None


def _parse(text: str) -> Any:
    """The document in `text`, measured (`_measure`) before it is built."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node, {}, set(), 1)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 2 * MAX_SHOWN else f"{flat[: 2 * MAX_SHOWN - 3]}..."


def _measure(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int], depth: int) -> int:
    """The number of values `node` stands for, aliases expanded (memoised in `sizes`, so an
    alias bomb costs its distinct nodes only).

    :raises yaml.MarkedYAMLError: when that is over `MAX_VALUES`, nests deeper than `MAX_DEPTH`
        or refers to itself.
    """
    if depth > MAX_DEPTH:
        raise _error(node, f"nested deeper than {MAX_DEPTH} levels")
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise _error(node, "an alias refers to a value that contains it")
    open_nodes.add(id(node))
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children: list[yaml.Node] = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    else:
        children = []
    for child in children:
        total += _measure(child, sizes, open_nodes, depth + 1)
        if total > MAX_VALUES:
            raise _error(node, f"stands for over {MAX_VALUES:,} values (aliases expanded)")
    open_nodes.discard(id(node))
    sizes[id(node)] = total
    return total


def _error(node: yaml.Node, problem: str) -> yaml.MarkedYAMLError:
    return yaml.MarkedYAMLError(problem=problem, problem_mark=node.start_mark)


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (YAML keeps the last),
    more than `MAX_ALIASES` aliases and a nesting deeper than `MAX_DEPTH` as written."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.MarkedYAMLError(
                    problem=f"more than {MAX_ALIASES} aliases", problem_mark=mark
                )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.MarkedYAMLError(
                    problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                written_twice = key in seen
                seen.add(key)
            except TypeError:  # a list or mapping as a key: YAML's own error names it
                break
            if written_twice:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {short(key)} written twice in one mapping",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)
