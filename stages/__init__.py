"""The pipeline's stages, one module each, run as `python -m stages.<name>` from `dvc.yaml`."""

import rlrepro  # noqa: F401  (pins the numerical environment before numpy or torch load)
