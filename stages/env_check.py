"""Stage `env_check`: each env works and simulates as the reference does, and packages are locked.

Reads `experiments` (their envs) and `env_check` from params, the lock (`--requirements`) and the
physics references (`--references`). For each env once: runs Gymnasium's and SB3's env checkers
and hashes a fixed rollout (`rlrepro.machine.physics`). Writes one JSON report per experiment
(`--reports/<exp>.json`: env spec, checks, digest, locked key versions), which that experiment's
`train` depends on, and this machine's facts to an untracked file (`--facts`).

It runs on every `dvc repro` (a check of this machine, not of changed inputs), so it is cheap
when nothing could have changed: when the fingerprint of this machine, its installed packages,
the lock, the references, the check's code and params (`rlrepro.machine.fingerprint`) equals the
last full check's, it rewrites that check's reports (the same bytes) without rerunning it.

A package whose installed version differs from the lock fails the stage, unless
RLREPRO_ALLOW_VERSION_MISMATCH=1 turns that into a warning (recorded in the report); a physics
digest that differs from the reference fails it too, unless RLREPRO_ALLOW_PHYSICS_MISMATCH=1
(which `make verify-stats` sets, to compare such a machine's results statistically).
"""

import dataclasses
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from rlrepro import console
from rlrepro.core import layout, params, requirements
from rlrepro.core.errors import StageError
from rlrepro.core.files import remove_others, write_json
from rlrepro.core.readers import read_json
from rlrepro.machine import ALLOW_PHYSICS_VAR
from rlrepro.machine.fingerprint import fingerprint

ALLOW_MISMATCH_VAR = "RLREPRO_ALLOW_VERSION_MISMATCH"
LOCKED_PYTHON = (3, 11)  # the Python that requirements.txt is compiled for
# The check's own code, and the params and lock code it runs: a change to any of it makes the
# next check a full one.
_ROOT = Path(__file__).parents[1]
_CODE = [
    Path(__file__),
    *sorted((_ROOT / "rlrepro" / "machine").glob("*.py")),
    *sorted((_ROOT / "rlrepro" / "core").glob("*.py")),
]


@dataclasses.dataclass(frozen=True)
class Paths:
    """What `env_check` reads and writes."""

    requirements: Path
    references: Path
    facts: Path
    reports: Path


def _envs(raw: dict[str, Any]) -> dict[str, str]:
    """Each experiment's env id, as params write it (validated by a full check)."""
    experiments = raw.get("experiments")
    if not isinstance(experiments, dict) or not experiments:
        params.section_names(raw, "experiments")  # raises the one-line error
        return {}
    return {
        name: str(spec.get("env")) if isinstance(spec, dict) else ""
        for name, spec in experiments.items()
    }


def _full_check(raw: dict[str, Any], paths: Paths) -> dict[str, dict[str, Any]]:
    """Check every env of params once, the versions and the physics; :return: the report of
    each experiment."""
    from rlrepro.machine import facts, physics
    from rlrepro.machine.envs import check_env

    experiments = {name: params.experiment(raw, name) for name in _envs(raw)}
    settings = params.section(raw, params.EnvCheck, "env_check")
    locked = requirements.locked(paths.requirements)
    mismatches = requirements.mismatches(locked)
    if mismatches and os.environ.get(ALLOW_MISMATCH_VAR) != "1":
        raise StageError(
            f"installed packages differ from {paths.requirements}: {'; '.join(mismatches)}. "
            f"Run `make repro` (it reinstalls .venv), or set {ALLOW_MISMATCH_VAR}=1 to go on"
        )
    for line in mismatches:
        print(f"warning: version mismatch allowed: {line}", file=sys.stderr)
    write_json(paths.facts, facts.facts())
    by_env = {}
    for env_id in sorted({exp.env for exp in experiments.values()}):
        by_env[env_id] = {
            **check_env(env_id),
            "key_versions": requirements.key_versions(locked),
            "version_mismatches": mismatches,
            "physics_digest": {
                "steps": settings.digest_steps,
                "seed": settings.digest_seed,
                "sha256": physics.check(
                    env_id, settings.digest_steps, settings.digest_seed, paths.references
                ),
            },
        }
    return {name: by_env[exp.env] for name, exp in experiments.items()}


_CACHE_SHAPE = {"fingerprint": str, "reports": {"*": dict}}


def _last_check(cache: Path) -> dict[str, Any]:
    """The last full check (fingerprint and reports) in `cache`; none when it is missing or
    damaged (this machine's scratch file: a full check runs and rewrites it)."""
    if not cache.is_file():
        return {}
    try:
        last: dict[str, Any] = read_json(cache, "last check", _CACHE_SHAPE)
    except StageError:
        return {}
    return last


def env_check(raw: dict[str, Any], paths: Paths) -> dict[str, dict[str, Any]]:
    """Check this machine for every experiment's env (or reuse the last full check, when its
    fingerprint is this one's); write the reports; :return: the report of each experiment.

    :raises StageError: on a version or physics mismatch that the environment does not allow,
        or a Python other than 3.11.
    :raises ParamsError: for an experiment name that cannot name a file (`layout.check_name`),
        before anything runs or is written: every `train` stage depends on its report, so no
        later stage (no shell command holding the name) can run.
    """
    for name in _envs(raw):
        layout.experiment_file(paths.reports, name, ".json")
    if sys.version_info[:2] != LOCKED_PYTHON:
        raise StageError(
            f"Python {platform.python_version()}: {paths.requirements} is locked for Python "
            f"{'.'.join(map(str, LOCKED_PYTHON))}; make a venv with a python3.11 "
            "(make clean-venv, then make repro PYTHON=/path/to/python3.11)"
        )
    settings = json.dumps(
        [
            _envs(raw),
            raw.get("env_check"),
            [os.environ.get(v) for v in (ALLOW_MISMATCH_VAR, ALLOW_PHYSICS_VAR)],
        ],
        sort_keys=True,
    )
    stamp = fingerprint([paths.requirements, paths.references, *_CODE], settings)
    cache = paths.facts.with_name("env_check.json")
    last = _last_check(cache)
    if last.get("fingerprint") == stamp:
        reports: dict[str, dict[str, Any]] = last["reports"]
    else:
        reports = _full_check(raw, paths)
        write_json(cache, {"fingerprint": stamp, "reports": reports})
    for name, report in reports.items():
        write_json(layout.experiment_file(paths.reports, name, ".json"), report)
    remove_others(paths.reports, set(reports))
    return reports


def main(argv: list[str] | None = None) -> int:
    """Check this machine for every experiment's env; write `--reports/<exp>.json`."""
    params_file, _, paths = console.parse(__doc__, Paths, argv)
    return console.run(lambda: env_check(params.read(params_file), paths))


if __name__ == "__main__":
    sys.exit(console.run(main))
