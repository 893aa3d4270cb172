"""rlrepro: deep-RL results that regenerate bit for bit.

Importing this package pins the numerical environment (thread counts, MKL's reproducibility
mode) before numpy or torch can load, so every stage and test sees the same numerics.
"""

from rlrepro.numerics import pin_environment

pin_environment()
