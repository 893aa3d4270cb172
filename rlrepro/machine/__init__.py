"""This machine: its facts, its physics digests, and the env checkers (stage `env_check`)."""

# Set to 1 to go on, with a warning, when this machine's physics differs from the reference
# (`make verify-stats` sets it). Here, without imports, so that the cheap check reads it too.
ALLOW_PHYSICS_VAR = "RLREPRO_ALLOW_PHYSICS_MISMATCH"
