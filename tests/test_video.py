"""Videos of trained agents: offscreen GIFs through MuJoCo's renderer and pygame, live errors."""

from pathlib import Path

import imageio.v3 as iio
import pytest

from tests.conftest import tiny_params, train_run, write_params
from tools import video


@pytest.mark.parametrize("exp", ["cartpole-ppo", "pendulum-reinforce"])
def test_gif_of_first_evaluation_episode(tmp_path: Path, exp: str) -> None:
    params_file = write_params(tmp_path / "params.yaml", tiny_params())
    train_run(params_file, tmp_path / "models", exp, seed=0)
    args = ["--params", str(params_file), "--models", str(tmp_path / "models")]
    args += ["--exp", exp, "--seed", "0", "--max-frames", "6", "--out", str(tmp_path / "videos")]
    assert video.main(args) == 0
    frames = iio.imread(tmp_path / "videos" / f"{exp}-0.gif", index=None)
    assert frames.ndim == 4 and frames.shape[-1] == 3 and 1 <= len(frames) <= 6
    assert frames.std() > 0  # something was drawn


def test_live_without_a_desktop_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")  # pygame must not fall back to a dummy window
    params_file = write_params(tmp_path / "params.yaml", tiny_params())
    train_run(params_file, tmp_path / "models", "cartpole-ppo", seed=0)
    args = ["--params", str(params_file), "--models", str(tmp_path / "models")]
    assert video.main([*args, "--exp", "cartpole-ppo", "--seed", "0", "--live"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: a live window failed (") and "make videos" in err[-1]


def test_missing_checkpoint_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params_file = write_params(tmp_path / "params.yaml", tiny_params())
    args = ["--params", str(params_file), "--models", str(tmp_path), "--exp", "cartpole-ppo"]
    assert video.main([*args, "--seed", "0"]) == 2
    assert (
        "cartpole-ppo-0.zip: no such checkpoint; run `make repro` first" in capsys.readouterr().err
    )
