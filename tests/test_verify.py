"""`python -m tools.verify` on a small committed pipeline: the same bytes under simulated
machines (slow), and a changed hyperparameter reported where the training traces part."""

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from rlrepro.training.trace import TRACE_HEADER
from tests.conftest import clone, make_project, run, tiny_params, write_params
from tools.pipeline import remove_outputs
from tools.verify import compatible, episode_parting, lock_outs, trace_parting


def small_params() -> dict[str, Any]:
    """Tiny params, but PPO as measured in the issue: CartPole, SB3's defaults, 4,096 steps."""
    data = tiny_params()
    data["seeds"] = [0]
    data["experiments"]["cartpole-ppo"].update(
        budget={"steps": 4096},
        policy={"hidden": [64, 64], "activation": "tanh"},
        hyperparams={"n_steps": 2048, "batch_size": 64, "n_epochs": 10},
    )
    data["experiments"]["pendulum-reinforce"]["budget"] = {"episodes": 20}
    return data


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small project and a one-experiment study (studies/tiny), each run once by
    `dvc repro` here, with their results committed and pushed to its DVC remote, a folder."""
    repo = make_project(tmp_path_factory.mktemp("reference") / "rlrepro", small_params())
    run(repo, "dvc", "remote", "add", "-d", "store", str(tmp_path_factory.mktemp("store")))
    study = repo / "studies" / "tiny"
    study.mkdir(parents=True)
    (study / "dvc.yaml").write_bytes((repo / "dvc.yaml").read_bytes())
    data = tiny_params()
    data["root"], data["seeds"] = "../..", [3]
    del data["experiments"]["cartpole-ppo"]
    write_params(study / "params.yaml", data)
    run(repo, "dvc", "repro")
    run(repo, "dvc", "repro", "studies/tiny/dvc.yaml")
    run(repo, "dvc", "push", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "results")
    return repo


def _verify(
    repo: Path,
    workdir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> tuple[int, str]:
    """Run verify on `repo` (cloning into `workdir`), its command after `prefix`;
    :return: the exit code and stdout (the tables; with stderr when it failed)."""
    command = (*prefix, sys.executable, "-m", "tools.verify", "--workdir", str(workdir), *args)
    result = run(repo, *command, check=False, env=env)
    return result.returncode, result.stdout + ("" if result.returncode < 2 else result.stderr)


def _counts(out: str) -> tuple[int, int]:
    """The "(N of M identical)" of verify's table."""
    found = re.search(r"\((\d+) of (\d+) identical\)", out)
    assert found, out
    return int(found[1]), int(found[2])


def test_changed_hyperparameter_is_found_where_it_parts(reference: Path, tmp_path: Path) -> None:
    changed = clone(reference, tmp_path / "changed")  # the committed traces pulled
    data = small_params()
    data["experiments"]["cartpole-ppo"]["hyperparams"]["learning_rate"] = 1.0e-3
    write_params(changed / "params.yaml", data)
    run(changed, "git", "commit", "-qam", "a higher learning rate, results not rerun")

    code, out = _verify(changed, tmp_path / "work")

    assert code == 1, out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "differs" in rows["train@cartpole-ppo-0"]
    # Update 0 is the initial policy; the first gradient steps come after the first rollout.
    assert "traces part at update 1 (step 2048): policy parameters" in rows["train@cartpole-ppo-0"]
    for stage in ("env_check", "train@pendulum-reinforce-0", "evaluate@pendulum-reinforce-0"):
        assert "identical" in rows[stage], out
    same, total = _counts(out)
    assert 0 < same < total


def test_identical_rerun_passes_with_stats(reference: Path, tmp_path: Path) -> None:
    code, out = _verify(reference, tmp_path / "work", "--stats")
    assert code == 0, out
    same, total = _counts(out)
    assert same == total > 0
    assert "cartpole-ppo" in out and "compatible" in out and "p=1" in out


def test_a_study_is_verified_in_its_folder(reference: Path, tmp_path: Path) -> None:
    code, out = _verify(reference, tmp_path / "work", "--pipeline", "studies/tiny")
    assert code == 0, out
    assert "train@pendulum-reinforce-3" in out and "cartpole" not in out
    same, total = _counts(out)
    assert same == total > 0


def test_the_rerun_starts_from_nothing(reference: Path, tmp_path: Path) -> None:
    # What verify does in its clone before the rerun: every output of that pipeline deleted (so
    # no stage can pass on a committed file), every stage stale, the lock and the study untouched.
    repo = clone(reference, tmp_path / "rlrepro")
    lock = (repo / "dvc.lock").read_bytes()
    committed = {p for outs in lock_outs(lock.decode()).values() for p in outs}
    removed = remove_outputs(repo, repo / "dvc.yaml")
    assert {p.relative_to(repo).as_posix() for p in removed} == committed
    assert not any((repo / path).exists() for path in committed)
    assert (repo / "dvc.lock").read_bytes() == lock
    assert any((repo / "studies" / "tiny" / "models").iterdir())
    status = json.loads(run(repo, "dvc", "status", "--json", "dvc.yaml").stdout)
    assert set(status) == set(lock_outs(lock.decode()))


def test_bad_rev_and_workdir_are_one_line_errors(reference: Path, tmp_path: Path) -> None:
    code, out = _verify(reference, tmp_path, "--rev", "no-such-branch")
    assert code == 2
    assert out.strip().splitlines()[-1] == (
        f"error: --rev no-such-branch: not a commit in {reference}; give a branch, tag or hash"
    )
    code, out = _verify(reference, tmp_path, "--pipeline", "studies/nope")
    assert code == 2 and out.strip().splitlines()[-1] == (
        "error: --pipeline studies/nope: no dvc.yaml there; give . or studies/<name>"
    )
    (tmp_path / "rlrepro").mkdir()
    (tmp_path / "rlrepro" / "keep.txt").write_text("mine")
    code, out = _verify(reference, tmp_path)
    assert code == 2 and "is not empty; give a new or empty folder" in out.splitlines()[-1]
    assert (tmp_path / "rlrepro" / "keep.txt").read_text() == "mine"


def test_trace_and_episode_parting(tmp_path: Path) -> None:
    header = ",".join(TRACE_HEADER)
    committed = f"{header}\n0,0,aa,bb\n1,128,cc,dd\n2,256,ee,ff\n"
    rerun = tmp_path / "trace.csv"
    rerun.write_text(f"{header}\n0,0,aa,bb\n1,128,cc,d0\n2,256,e0,f0\n")
    assert trace_parting(committed, rerun) == "traces part at update 1 (step 128): observations"
    rerun.write_text(committed)
    assert trace_parting(committed, rerun) is None

    episodes = tmp_path / "eval.csv"
    episodes.write_text("episode,episode_return,episode_length\n0,9.0,9\n1,12.0,12\n")
    was = "episode,episode_return,episode_length\n0,9.0,9\n1,10.0,10\n"
    assert (
        episode_parting(was, episodes) == "first differing episode 1: return 12.0, committed 10.0"
    )
    assert episode_parting(episodes.read_text(), episodes) is None


def test_lock_outs_reads_each_stage_hashes() -> None:
    text = (
        "schema: '2.0'\nstages:\n  plot:\n    cmd: x\n    outs:\n"
        "    - path: reports/curves\n      hash: md5\n      md5: abc.dir\n"
    )
    assert lock_outs(text) == {"plot": {"reports/curves": "abc.dir"}}


def test_statistical_comparison_is_over_run_scores() -> None:
    same = [100.0, 250.0, 400.0]  # three runs' scores, as the default pipeline has
    assert compatible(same, list(same), 0.05).result == "compatible"
    close = [x + 20 for x in same]  # within the runs' spread: no evidence of a difference
    assert compatible(same, close, 0.05).result == "compatible"
    shifted = [1000.0, 1010.0, 1020.0]  # far beyond it: p is small with 3 runs a side
    row = compatible(same, shifted, 0.05)
    assert row.result == "differs" and "Welch's t" in row.detail and "3 runs" in row.detail
    constant = [1000.0, 1000.0, 1000.0]  # a solved env: every run at the ceiling, both sides
    assert "p=1" in compatible(constant, list(constant), 0.05).detail
    assert compatible(same, [5.0], 0.05).result == "too few"
    assert compatible([5.0], [5.0], 0.05).result == "compatible"  # one seed, the same bytes
    assert compatible(same, [], 0.05).result == "missing"


# A simulated machine: the environment it sets, and a command prefix that limits it.
MACHINES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "mkl-avx2": ({"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, ()),
    "mkl-sse4_2": ({"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}, ()),
    "aten-avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, ()),
    "numpy-no-avx512": ({"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}, ()),
    "one-cpu": ({}, ("taskset", "-c", "0")),
    "user-threads-2": ({"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}, ()),
    "other-path": ({}, ()),
    "tz-locale": ({"TZ": "Pacific/Chatham", "LC_ALL": "POSIX", "LANG": "de_DE.UTF-8"}, ()),
}


@pytest.mark.slow
@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_same_bytes_on_simulated_machine(reference: Path, tmp_path: Path, machine: str) -> None:
    env, prefix = MACHINES[machine]
    workdir = tmp_path / "an other place" / "clone path" if machine == "other-path" else tmp_path
    code, out = _verify(reference, workdir, env=env, prefix=prefix)
    assert code == 0, out
    same, total = _counts(out)
    assert same == total > 0
    # The simulated machine was really in force when the stages ran.
    facts = json.loads((workdir / "rlrepro" / "reports/machine/facts.json").read_text())
    if machine == "aten-avx2":
        assert facts["torch_cpu_capability"] == "AVX2"
    elif machine == "numpy-no-avx512":
        assert "X86_V4" not in facts["numpy_simd_in_use"]
    elif machine == "one-cpu":
        assert facts["cpus_usable"] == 1
    for key, value in env.items():
        if key.startswith(("MKL_ENABLE", "NPY_", "ATEN_")):
            assert facts["env"][key] == value


def test_stages_gone_from_the_pipeline_are_stale_not_identical(
    reference: Path, tmp_path: Path
) -> None:
    changed = tmp_path / "fewer"
    run(tmp_path, "git", "clone", "-q", str(reference), str(changed))
    data = small_params()
    del data["experiments"]["pendulum-reinforce"]
    write_params(changed / "params.yaml", data)
    run(changed, "git", "commit", "-qam", "one experiment fewer, dvc.lock not rerun")

    code, out = _verify(changed, tmp_path / "work")

    assert code == 1, out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "stale" in rows["train@pendulum-reinforce-0"], out
    assert "no longer a stage" in rows["evaluate@pendulum-reinforce-0"], out
    assert "identical" in rows["train@cartpole-ppo-0"], out
