"""Stage `env_check`: the env works, simulates as the reference does, and packages are locked.

Reads `experiments.<exp>.env` and `env_check` from params, `requirements.txt` and the physics
references (`references/physics.json`); runs Gymnasium's and SB3's env checkers and hashes a fixed
rollout (`rlrepro.physics`); writes a JSON report (env spec, checks, digest, checked versions) that
`train` depends on, and this machine's facts to an untracked file (`rlrepro.machine`).
A package whose installed version differs from the lock fails the stage, unless the environment
variable RLREPRO_ALLOW_VERSION_MISMATCH=1 turns that into a warning (recorded in the report); a
physics digest that differs from the reference fails it too, unless RLREPRO_ALLOW_PHYSICS_MISMATCH=1
(which `python -m rlrepro.verify --stats` sets, to compare such a machine's results statistically).
"""

import os
import re
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium.utils.env_checker import check_env as gym_check_env
from packaging.requirements import Requirement
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from rlrepro import cli, machine, params, physics
from rlrepro.files import write_json

ALLOW_MISMATCH_VAR = "RLREPRO_ALLOW_VERSION_MISMATCH"
ALLOW_PHYSICS_VAR = "RLREPRO_ALLOW_PHYSICS_MISMATCH"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
KEY_PACKAGES = ("dvc", "gymnasium", "mujoco", "numpy", "stable-baselines3", "torch")


def locked_requirements(path: Path) -> list[Requirement]:
    """The `name==version` lines of a pip-compile lock file."""
    if not path.is_file():
        raise cli.StageError(f"{path}: no such lock file; run `make lock` to create it")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def version_mismatches(requirements: list[Requirement]) -> list[str]:
    """One 'name: locked X, installed Y' line per requirement the installed package breaks."""
    found = []
    for req in requirements:
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed == "not installed" or not req.specifier.contains(installed, prereleases=True):
            found.append(f"{req.name}: locked {req.specifier}, installed {installed}")
    return found


def check_env(env_id: str) -> dict[str, Any]:
    """Create `env_id` and run both env checkers on it; :return: the env's spec and checks."""
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)
    spec = env.spec
    assert spec is not None
    env.close()
    return {
        "env": env_id,
        "observation_space": str(env.observation_space),
        "action_space": str(env.action_space),
        "max_episode_steps": spec.max_episode_steps,
        "reward_threshold": spec.reward_threshold,
        "checks": [
            "gymnasium.utils.env_checker.check_env",
            "stable_baselines3.common.env_checker.check_env",
        ],
        "checker_warnings": sorted({_ANSI.sub("", str(w.message)).splitlines()[0] for w in caught}),
    }


def report(env_id: str, requirements: list[Requirement], mismatches: list[str]) -> dict[str, Any]:
    """The tracked report: env checks, the key locked versions and any allowed mismatches."""
    locked = {req.name: str(req.specifier) for req in requirements}
    return {
        **check_env(env_id),
        "key_versions": {name: locked.get(name, "not locked") for name in KEY_PACKAGES},
        "version_mismatches": mismatches,
    }


def main(argv: list[str] | None = None) -> int:
    """Check experiment `--exp`'s env and the installed versions; write `--out`."""
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--exp", required=True, help="experiment name in params.yaml")
    parser.add_argument("--requirements", type=Path, default=Path("requirements.txt"))
    parser.add_argument("--references", type=Path, default=Path(physics.REFERENCE_FILE))
    parser.add_argument(
        "--facts",
        type=Path,
        default=machine.FACTS_FILE,
        help="where to write this machine's facts (untracked)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the JSON report to write")
    args = parser.parse_args(argv)

    def work() -> None:
        raw = params.read(args.params)
        exp = params.experiment(raw, args.exp)
        settings = params.section(raw, params.EnvCheck, "env_check")
        requirements = locked_requirements(args.requirements)
        mismatches = version_mismatches(requirements)
        if mismatches and os.environ.get(ALLOW_MISMATCH_VAR) != "1":
            raise cli.StageError(
                f"installed packages differ from {args.requirements}: {'; '.join(mismatches)}. "
                f"Run `make repro` (it reinstalls .venv), or set {ALLOW_MISMATCH_VAR}=1 to go on"
            )
        for line in mismatches:
            print(f"warning: version mismatch allowed: {line}", file=sys.stderr)
        write_json(args.facts, machine.facts())
        try:
            digest = physics.check(
                exp.env, settings.digest_steps, settings.digest_seed, args.references
            )
        except physics.PhysicsMismatchError as err:
            if os.environ.get(ALLOW_PHYSICS_VAR) != "1":
                raise cli.StageError(f"{err}; or set {ALLOW_PHYSICS_VAR}=1 to go on") from err
            print(f"warning: physics mismatch allowed: {err}", file=sys.stderr)
            digest = err.digest
        except ValueError as err:
            raise cli.StageError(str(err)) from err
        write_json(
            args.out,
            {
                **report(exp.env, requirements, mismatches),
                "physics_digest": {
                    "steps": settings.digest_steps,
                    "seed": settings.digest_seed,
                    "sha256": digest,
                },
            },
        )

    return cli.run(work)


if __name__ == "__main__":
    sys.exit(main())
