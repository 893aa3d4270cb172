"""Watching the trained agents: GIFs rendered offscreen (`make videos`), or a live window
(`make play EXP=... SEED=...`).

    python -m tools.video [--params params.yaml] [--exp EXP --seed SEED] [--live]

Each agent plays its first evaluation episode (reset with seed `evaluate.seed`) with its
deterministic policy. MuJoCo envs render through MuJoCo's own offscreen renderer (`MUJOCO_GL`,
default `egl`; `osmesa` also works), CartPole through Gymnasium's `rgb_array` (pygame). GIFs go
to `reports/videos/<exp>-<seed>.gif`, outside the pipeline and untracked: a renderer's pixels may
differ from one machine to another, so they are not part of what must be byte-identical.
"""

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v3 as iio

from rlrepro import console
from rlrepro.agents import checkpoint, load_actor
from rlrepro.agents.rollout import rollout
from rlrepro.core import layout, params
from rlrepro.core.errors import UserError
from rlrepro.core.files import write_bytes

RENDER_HELP = (
    "offscreen rendering failed ({err}); MuJoCo needs EGL (Debian: libegl1 libgl1-mesa-dri) "
    "or OSMesa (Debian: libosmesa6): install one, then set MUJOCO_GL=egl or MUJOCO_GL=osmesa"
)
LIVE_HELP = (
    "a live window failed ({err}); it needs a desktop session (DISPLAY or WAYLAND_DISPLAY set); "
    "without one, `make videos` renders GIFs offscreen"
)


def frames(
    model: checkpoint.Checkpoint, evaluation_seed: int, max_frames: int, live: bool
) -> list[Any]:
    """Play checkpoint `model`'s first evaluation episode; :return: its RGB frames (none live)."""
    env = gym.make(model.meta["env"], render_mode="human" if live else "rgb_array")
    shots: list[Any] = []

    def watch(watched: gym.Env[Any, Any]) -> bool:
        if not live:
            shots.append(watched.render())
        return len(shots) < max_frames

    try:
        rollout([env], load_actor(model, env), 1, evaluation_seed, watch=watch)
        return shots
    finally:
        env.close()


def write_gif(path: Path, shots: list[Any], fps: int) -> None:
    """Write `shots` as a looping GIF at `fps` frames per second (temporary file, then rename)."""
    data = iio.imwrite("<bytes>", shots, extension=".gif", duration=1000 / fps, loop=0)
    write_bytes(path, data)


def main(argv: list[str] | None = None) -> int:
    """Render every trained agent of params (or `--exp`/`--seed`) to a GIF, or play one live."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--models", type=Path, default=layout.MODELS, help="checkpoint folder")
    parser.add_argument("--out", type=Path, default=layout.VIDEOS, help="folder for the GIFs")
    parser.add_argument("--exp", help="one experiment (default: all)")
    parser.add_argument("--seed", type=int, help="one seed (default: all)")
    parser.add_argument("--max-frames", type=int, default=250, help="frames per GIF at most")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--live", action="store_true", help="show it in a window instead")
    args = parser.parse_args(argv)
    # Before an env loads mujoco: offscreen EGL needs no display; a live window needs GLFW.
    os.environ.setdefault("MUJOCO_GL", "glfw" if args.live else "egl")

    def work() -> None:
        raw = params.read(args.params)
        names = [args.exp] if args.exp else params.section_names(raw, "experiments")
        seeds = [args.seed] if args.seed is not None else list(params.seeds(raw))
        evaluation = params.section(raw, params.Evaluation, "evaluate")
        for name in names:
            params.experiment(raw, name)  # a named, known experiment
            for seed in seeds:
                model = layout.run_file(args.models, name, seed, ".zip")
                if not model.is_file():
                    raise UserError(f"{model}: no such checkpoint; run `make repro` first")
                loaded = checkpoint.load(model)
                try:
                    shots = frames(loaded, evaluation.seed, args.max_frames, args.live)
                except UserError:  # a checkpoint whose weights do not fit it, not a renderer
                    raise
                except Exception as err:  # the renderers raise many kinds; name them all alike
                    why = (str(err).splitlines() or [type(err).__name__])[0]
                    help_text = LIVE_HELP if args.live else RENDER_HELP
                    raise UserError(help_text.format(err=why)) from err
                if not args.live:
                    out = layout.run_file(args.out, name, seed, ".gif")
                    write_gif(out, shots, args.fps)
                    print(f"{out}: {len(shots)} frames")

    return console.run(work)


if __name__ == "__main__":
    sys.exit(console.run(main))
