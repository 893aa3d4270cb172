"""This machine: its facts, its physics digests, and the env checkers (stage `env_check`)."""
