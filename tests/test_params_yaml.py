"""params.yaml (and each study's) is written as DVC's writer writes it: `dvc exp run -S key=value`
(DVC's `apply_overrides`, called here in-process) and then the committed value back leaves the
file byte-identical to git, for every key."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from tests.conftest import ROOT

PARAMS_FILES = [ROOT / "params.yaml", *sorted(ROOT.glob("studies/*/params.yaml"))]


def _leaves(data: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every scalar and list in `data`."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    else:
        yield path, data


def _override(value: Any) -> str | None:
    """`value` in Hydra's override grammar, as `-S` takes it; None for a value that DVC's
    writer cannot give back in the committed text (null, or a float that ruamel writes as
    `1e-06`, which YAML 1.1 readers such as PyYAML read as a string)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        text = repr(value)
        return text if yaml.safe_load(text) == value else None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return "[" + ",".join(map(str, value)) + "]"
    return None


def _other(value: Any) -> str:
    """Another value of `value`'s kind, in the override grammar."""
    if isinstance(value, bool):
        return str(not value).lower()
    if isinstance(value, int | float):
        return repr(value + 1)
    if isinstance(value, str):
        return "'other'"
    return "[" + ",".join(str(v + 1) for v in value) + "]"


@pytest.mark.parametrize("params_file", PARAMS_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_value_set_and_set_back_leaves_the_file_as_committed(
    tmp_path: Path, params_file: Path
) -> None:
    """Every key, set to another value and back as `dvc exp run -S` does, gives back the
    committed bytes (seeds among them: `seeds: [0, 1, 2]` came back as a block list)."""
    committed = params_file.read_bytes()
    work = tmp_path / "params.yaml"
    work.write_bytes(committed)
    checked = []
    for key, value in _leaves(yaml.safe_load(committed)):
        back = _override(value)
        if back is None:
            continue
        apply_overrides(work, [f"{key}={_other(value)}"])
        assert work.read_bytes() != committed, key
        apply_overrides(work, [f"{key}={back}"])
        assert work.read_text() == committed.decode(), key
        checked.append(key)
    assert "seeds" in checked and len(checked) > 10
