"""dvc.yaml's code deps cover everything each stage runs, and the studies share one dvc.yaml."""

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from rlrepro.core import layout
from rlrepro.core.errors import ParamsError, StageError
from stages import evaluate, train
from tests.conftest import ROOT

STAGES = ("env_check", "train", "evaluate", "metrics", "plot", "report")
STUDY_PARAMS = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("studies/*/params.yaml"))
# The terminal side of the stages: no stage depends on it (a help text reruns nothing).
COSMETIC = {"rlrepro/console.py"}


def _module_file(name: str) -> str | None:
    """The project file of module `name` (`a.b` -> `a/b.py` or `a/b/__init__.py`), if any."""
    base = name.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if (ROOT / candidate).is_file():
            return candidate
    return None


def _imports(path: str) -> set[str]:
    """The project files that file `path` imports directly, package inits included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            for end in range(1, len(parts) + 1):  # importing a.b.c runs a/ and a/b/ too
                file = _module_file(".".join(parts[:end]))
                if file is not None:
                    found.add(file)
    return found


def _closure(stage_file: str) -> set[str]:
    """Every project file a stage runs: its module, the package inits, and what they import."""
    needed = {stage_file, "stages/__init__.py", *_imports(stage_file)}
    todo = sorted(needed)
    while todo:
        for file in _imports(todo.pop()):
            if file not in needed:
                needed.add(file)
                todo.append(file)
    return needed


def _declared(stage: str) -> list[str]:
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    return [d.removeprefix("${root}/") for d in spec["deps"] if d.startswith("${root}/")]


@pytest.mark.parametrize("stage", STAGES)
def test_code_deps_cover_what_the_stage_runs(stage: str) -> None:
    declared = _declared(stage)
    runs = _closure(f"stages/{stage}.py") - COSMETIC
    uncovered = {f for f in runs if not any(f == d or f.startswith(f"{d}/") for d in declared)}
    assert not uncovered, f"{stage} runs code its deps do not list: {sorted(uncovered)}"
    unused = {d for d in declared if d.endswith(".py") and d not in runs}
    assert not unused, f"{stage} lists code it does not run: {sorted(unused)}"


def test_evaluate_does_not_depend_on_training_code() -> None:
    assert not any(d.startswith("rlrepro/training") for d in _declared("evaluate"))
    assert not any(f.startswith("rlrepro/training") for f in _closure("stages/evaluate.py"))


def test_library_never_imports_the_terminal_side_or_the_tools() -> None:
    for path in sorted(ROOT.glob("rlrepro/**/*.py")):
        file = str(path.relative_to(ROOT))
        if file in COSMETIC:
            continue
        imported = _imports(file)
        assert not imported & COSMETIC, f"{file} imports {sorted(imported & COSMETIC)}"
        assert not any(f.startswith(("tools/", "stages/")) for f in imported), file


def test_studies_run_the_one_dvc_yaml() -> None:
    """Each study's dvc.yaml is a copy of the root's (`make studies` writes them): a real file,
    because DVC reads a git revision's files without following links."""
    studies = sorted(ROOT.glob("studies/*/dvc.yaml"))
    assert studies
    for study in studies:
        assert not study.is_symlink(), study
        assert study.read_bytes() == (ROOT / "dvc.yaml").read_bytes(), f"{study}: run make studies"
        assert yaml.safe_load((study.parent / "params.yaml").read_text())["root"] == "../.."


@pytest.mark.parametrize("module", ["stages.train", "tools.verify", "tools.run", "tools.video"])
def test_entry_points_start_from_a_plain_shell(module: str) -> None:
    """Without the pins in the environment (a user's shell), every entry point sets them before
    numpy or torch load, rather than failing on its first third-party import."""
    import os
    import subprocess
    import sys

    shell = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "ATEN_"))}
    shell.pop("OPENBLAS_NUM_THREADS", None)
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        env=shell,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def _runs(params_file: Path) -> list[tuple[str, int]]:
    """The runs (experiment, seed) of the matrix stages under params `params_file`."""
    data = yaml.safe_load(params_file.read_text())
    return [(exp, seed) for exp in data["experiments"] for seed in data["seeds"]]


def _item(paths: list[str], exp: str, seed: int) -> list[str]:
    """`paths` of dvc.yaml with `${item.*}` replaced as DVC's matrix does for run (exp, seed)."""
    return [p.replace("${item.exp}", exp).replace("${item.seed}", str(seed)) for p in paths]


@pytest.mark.parametrize("params_path", ["params.yaml", *STUDY_PARAMS])
def test_matrix_stages_write_the_outs_dvc_yaml_declares(params_path: str) -> None:
    """Each train and evaluate stage finds its files from its address alone (`--stage
    "$DVC_STAGE"`); they are its outs in dvc.yaml (and evaluate's checkpoint is its dep)."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    where = Path(params_path).parent
    prefix = "" if where == Path() else f"{where / 'dvc.yaml'}:"
    runs = _runs(ROOT / params_path)
    assert runs
    for exp, seed in runs:
        for name, module in (("train", train), ("evaluate", evaluate)):
            address = f"{prefix}{name}@{exp}-{seed}"
            chosen, paths = module.from_address(address, ROOT / params_path)
            outs = [str(p) for p in dataclasses.astuple(paths)]
            declared = _item(spec[name]["outs"], exp, seed)
            if name == "train":
                assert chosen == {"exp": exp, "seed": seed}
                assert outs == [*declared, str(layout.run_file(layout.TIMING, exp, seed, ".json"))]
            else:
                assert outs[0] in _item(spec[name]["deps"], exp, seed)
                assert outs[1:] == declared


def test_no_params_value_reaches_a_shell() -> None:
    """No stage's command interpolates a matrix item (an experiment's name, a seed): DVC would
    hand it to a shell, which expands `$(...)` in it."""
    for name, spec in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        assert "${item" not in spec["cmd"], name
        assert "${" not in spec["cmd"].replace("${root}", ""), name


def test_a_stage_refuses_an_address_not_its_own(params_file: Path) -> None:
    with pytest.raises(StageError, match=r"^stage 'evaluate@cartpole-ppo-0': expected train@<exp"):
        train.from_address("evaluate@cartpole-ppo-0", params_file)
    with pytest.raises(StageError, match=r"the address of a run of stage evaluate "):
        evaluate.from_address("evaluate@cartpole-ppo-00", params_file)
    with pytest.raises(ParamsError, match=r"^seeds: stage 'train@cartpole-ppo-7' has seed 7, "):
        train.from_address("train@cartpole-ppo-7", params_file)
    with pytest.raises(ParamsError, match=r"^experiments\.'x\$\(touch.*: not a valid name"):
        train.from_address("a/dvc.yaml:train@x$(touch${IFS}INJECTED)-0", params_file)


def test_a_stage_takes_its_address_or_its_options_exactly(
    params_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--stage` goes alone; without it, every option is needed; an empty address (DVC_STAGE
    unset) is one line, exit 2."""
    address = ["--params", str(params_file), "--stage"]
    with pytest.raises(SystemExit) as stopped:
        train.main([*address, "train@cartpole-ppo-0", "--seed", "0"])
    assert stopped.value.code == 2
    assert "error: --stage goes alone: drop --seed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        evaluate.main(["--params", str(params_file), "--model", "m.zip"])
    assert stopped.value.code == 2
    assert "required: --episodes, --summary (or --stage)" in capsys.readouterr().err
    assert evaluate.main([*address, ""]) == 2
    assert capsys.readouterr().err.startswith("error: stage '': expected evaluate@<experiment>-")
