"""The pipeline's stages, one module each; `dvc.yaml` runs them as `python -m stages.<name>`.

A stage started by a Python without the project's packages (outside `.venv`) stops here with one
line saying how to enter the environment, not with an import traceback.
"""

import importlib.util
import sys

_NEEDED = ("gymnasium", "stable_baselines3", "torch", "yaml")

_missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
if _missing:
    print(
        f"error: {sys.executable} lacks {', '.join(_missing)}: run the pipeline in the project's "
        "environment: `make repro`, or `source .venv/bin/activate` and then `dvc repro`",
        file=sys.stderr,
    )
    sys.exit(2)

# Before any stage module imports numpy or torch: pin the numerical environment.
import rlrepro  # noqa: E402, F401
