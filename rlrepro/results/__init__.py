"""Results over seeds: statistics (IQM, bootstrap and t intervals), mean learning curves, and
reading the statistics that stage `metrics` wrote."""

import json
from pathlib import Path
from typing import Any

from rlrepro.core import layout


def read_stats(folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """The statistics of experiments `names` in `folder` (`<exp>.json`, from stage `metrics`).

    :raises StageError: naming the files that are missing.
    """
    files = [layout.experiment_file(folder, name, ".json") for name in names]
    texts = [file.read_text() for file in layout.require(files, "statistics")]
    return {name: json.loads(text) for name, text in zip(names, texts, strict=True)}


def profile_name(env: str) -> str:
    """The stem of the performance profile figure of env `env` (stage `plot` writes it, the
    results page links it)."""
    return f"profile-{env}"
