"""Stage `env_check`: the env works, simulates as the reference does, and packages are locked.

Reads `experiments.<exp>.env` and `env_check` from params, the lock (`--requirements`) and the
physics references (`--references`); runs Gymnasium's and SB3's env checkers and hashes a fixed
rollout (`rlrepro.machine.physics`); writes a JSON report (`--report`: env spec, checks, digest,
locked key versions) that `train` depends on, and this machine's facts to an untracked file
(`--facts`). A package whose installed version differs from the lock fails the stage, unless
RLREPRO_ALLOW_VERSION_MISMATCH=1 turns that into a warning (recorded in the report); a physics
digest that differs from the reference fails it too, unless RLREPRO_ALLOW_PHYSICS_MISMATCH=1
(which `make verify-stats` sets, to compare such a machine's results statistically).
"""

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from rlrepro import console
from rlrepro.core import params, requirements
from rlrepro.core.errors import StageError
from rlrepro.core.files import write_json
from rlrepro.machine import facts, physics
from rlrepro.machine.envs import check_env

ALLOW_MISMATCH_VAR = "RLREPRO_ALLOW_VERSION_MISMATCH"
ALLOW_PHYSICS_VAR = physics.ALLOW_MISMATCH_VAR


@dataclasses.dataclass(frozen=True)
class Paths:
    """What `env_check` reads and writes."""

    requirements: Path
    references: Path
    facts: Path
    report: Path


def env_check(raw: dict[str, Any], exp_name: str, paths: Paths) -> dict[str, Any]:
    """Check experiment `exp_name`'s env, the installed versions and the physics; write the report
    and the machine facts; :return: the report.

    :raises StageError: on a version or physics mismatch that the environment does not allow.
    """
    exp = params.experiment(raw, exp_name)
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
    digest = physics.check(exp.env, settings.digest_steps, settings.digest_seed, paths.references)
    report = {
        **check_env(exp.env),
        "key_versions": requirements.key_versions(locked),
        "version_mismatches": mismatches,
        "physics_digest": {
            "steps": settings.digest_steps,
            "seed": settings.digest_seed,
            "sha256": digest,
        },
    }
    write_json(paths.report, report)
    return report


def main(argv: list[str] | None = None) -> int:
    """Check experiment `--exp`'s env and this machine; write `--report`."""
    params_file, chosen, paths = console.parse(__doc__, Paths, argv, exp=str)
    return console.run(lambda: env_check(params.read(params_file), chosen["exp"], paths))


if __name__ == "__main__":
    sys.exit(main())
