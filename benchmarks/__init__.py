"""Benchmarks: speed and sample-efficiency figures printed from the pipelines' last runs."""

import rlrepro  # noqa: F401  (pins the numerical environment before numpy or torch load)
