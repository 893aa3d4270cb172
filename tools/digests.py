"""`make digests`: record this machine's physics digests of every env in params as the references.

    python -m tools.digests [--params params.yaml] [--references references/physics.json]

Run it deliberately, when the simulator changed on purpose (a new MuJoCo), then commit the file.
"""

import argparse
import sys
from pathlib import Path

from rlrepro import console
from rlrepro.core import layout, params
from rlrepro.core.files import write_json
from rlrepro.machine.physics import read_references, rollout_digest


def record(params_file: Path, references: Path) -> dict[str, str]:
    """Write the digests of params' envs into `references`; :return: each env's digest."""
    raw = params.read(params_file)
    settings = params.section(raw, params.EnvCheck, "env_check")
    envs = sorted({params.experiment(raw, n).env for n in params.section_names(raw, "experiments")})
    known = read_references(references) if references.is_file() else {}
    found = {}
    for env_id in envs:
        found[env_id] = rollout_digest(env_id, settings.digest_steps, settings.digest_seed)
        known[env_id] = {
            "steps": settings.digest_steps,
            "seed": settings.digest_seed,
            "sha256": found[env_id],
        }
    write_json(references, known)
    return found


def main(argv: list[str] | None = None) -> int:
    """Record and print the digests."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--references", type=Path, default=layout.REFERENCES)
    args = parser.parse_args(argv)

    def work() -> None:
        for env_id, digest in record(args.params, args.references).items():
            print(f"{env_id}: {digest}")

    return console.run(work)


if __name__ == "__main__":
    sys.exit(console.run(main))
