"""dvc.yaml declares, for each stage, exactly the project modules that stage imports."""

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

STAGES = ("env_check", "train", "evaluate", "metrics", "plot", "report")


def _imports(path: Path) -> set[str]:
    """The first-party modules (`rlrepro.x`) that `path` imports directly."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "rlrepro":
                found |= {f"rlrepro.{alias.name}" for alias in node.names}
            elif node.module.startswith("rlrepro."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "rlrepro"}
    return {name for name in found if (ROOT / f"{name.replace('.', '/')}.py").is_file()}


def _closure(stage_file: str) -> set[str]:
    """Every project file a stage runs: its module, the package inits, and what they import."""
    needed = {stage_file, "stages/__init__.py", "rlrepro/__init__.py"}
    todo = sorted(needed)
    while todo:
        for module in _imports(ROOT / todo.pop()):
            file = f"{module.replace('.', '/')}.py"
            if file not in needed:
                needed.add(file)
                todo.append(file)
    return needed


@pytest.mark.parametrize("stage", STAGES)
def test_code_deps_match_imports(stage: str) -> None:
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    declared = {d.removeprefix("${root}/") for d in spec["deps"] if d.endswith(".py")}
    assert declared == _closure(f"stages/{stage}.py")


def test_studies_run_the_same_pipeline() -> None:
    studies = sorted(ROOT.glob("studies/*/dvc.yaml"))
    for study in studies:
        assert study.read_text() == (ROOT / "dvc.yaml").read_text(), study
        assert yaml.safe_load((study.parent / "params.yaml").read_text())["root"] == "../.."
