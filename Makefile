# The two commands a user needs: `make repro` (run the pipeline) and `make test`.
# Both create .venv from requirements.txt when it is missing or older than the lock.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`: put the venv first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help status repro pull push check test test-slow test-machines verify verify-stats bench bench-pipeline videos play lint lock studies digests clean-venv

# `make` alone lists the targets.
.DEFAULT_GOAL := help

# Every target and what it does: the `## ` text on its line.
help:  ## list the targets (this)
	@awk -F ':.*## ' '/^[a-z][a-z-]*:.*## / {printf "make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

status: $(STAMP)  ## which stages are up to date, and why the others would rerun
	$(BIN)/python -m tools.status

# The lock pins every wheel by its hash (pip's hash-checking mode), torch's CPU build from
# PyTorch's CPU index. Where that index cannot be reached at all, pip does not retry it for each
# package (it takes torch from the folders its own configuration names).
$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes \
		$$($(BIN)/python -m tools.reachable download.pytorch.org || echo --retries 0) -r requirements.txt
	$(BIN)/python -m pip check
	touch $@

# The stale stages side by side on every core (or a Ray cluster: RAY_ADDRESS); JOBS=N: at most N.
repro: $(STAMP)  ## run the stale stages side by side on every core (JOBS=N: at most N)
	$(BIN)/python -m tools.run $(if $(JOBS),--jobs $(JOBS))

# The outputs in DVC's cache (checkpoints, per-run data, figures) from the default DVC remote
# (docs/sharing.md), each file hashed against dvc.lock before it is left in the workspace (bad
# bytes set aside in .dvc/tmp/quarantine/ and fetched again); without a remote, a line says what
# is missing and how to get it. `make repro` pulls too, before it runs anything: a stage whose
# outputs the remote holds is not rerun.
pull: $(STAMP)  ## fetch the outputs in DVC's cache from the default remote, each hashed
	$(BIN)/python -m tools.pull

# To the default DVC remote: every output of dvc.lock, the run-cache and every recorded run's
# outputs (those kept in git too), each cache object hashed before it leaves: what another clone
# needs to restore any stage run here instead of rerunning it.
push: $(STAMP)  ## send outputs and runs to the default remote, each object hashed first
	$(BIN)/python -m tools.push

# Every output of every pipeline, in the workspace and in DVC's cache, hashed against dvc.lock:
# one line per file that differs (exit 1). Changes nothing.
check: $(STAMP)  ## hash every output against dvc.lock: one line per file that differs
	$(BIN)/python -m tools.check

test: $(STAMP)  ## run the default tests (under 15 minutes)
	$(BIN)/python -m pytest

# The slow tests (kills and resumes, the runner, verify): minutes, not seconds.
test-slow: $(STAMP)  ## run the slow tests (kills and resumes, the runner, verify)
	$(BIN)/python -m pytest -m slow --ignore tests/test_other_machines.py

# The same bytes on other machines: every algorithm's pipeline natively, then its train and
# evaluate stages on emulated Intel and AMD CPUs (qemu-user), and every stage under Debian 13's
# C library and in a venv of Debian's own Python 3.11 (each fetched or installed by the test).
test-machines: $(STAMP)  ## the same bytes on emulated CPUs, another glibc, another Python build
	$(BIN)/python -m pytest -m slow -s tests/test_other_machines.py

# Rerun the committed pipeline from nothing in a fresh clone, with the runner (JOBS=N: at most N
# CPUs); compare every output with dvc.lock.
# A study: make verify PIPELINE=studies/double-pendulum
# On another CPU, emulated (train and evaluate stages; ~17x slower): make verify CPU=Haswell-v4
# Under another C library (Debian 13's glibc 2.41, every stage): make verify LIBC=trixie
# In another build of Python 3.11 (its own venv, every stage): make verify PYTHON_BUILD=/usr/bin/python3.11
PIPELINE ?= .
verify: $(STAMP)  ## rerun the committed pipeline from nothing in a clone; compare with dvc.lock
	$(BIN)/python -m tools.verify --pipeline $(PIPELINE) $(if $(CPU),--cpu $(CPU)) \
		$(if $(LIBC),--libc $(LIBC)) $(if $(PYTHON_BUILD),--python $(PYTHON_BUILD)) $(if $(JOBS),--jobs $(JOBS))

# The same, for a machine whose bytes cannot match: compare evaluations statistically.
verify-stats: $(STAMP)  ## the same, compared statistically (a machine whose bytes cannot match)
	$(BIN)/python -m tools.verify --stats --pipeline $(PIPELINE)

# The matrix product against MKL's (benchmarks/gemm.py); where users wait, as ratios against
# anchors measured in the same run (benchmarks/speed.py),
# then the speed and sample efficiency of the last runs here: the main pipeline and every study.
bench: $(STAMP)  ## benchmarks: matrix product, where users wait, the last runs' speed
	$(BIN)/python -m benchmarks.gemm
	$(BIN)/python -m benchmarks.speed
	$(BIN)/python -m benchmarks.bench . $(wildcard studies/*)

# The default pipeline from nothing in two fresh clones: serial `dvc repro` against the runner
# (wall times, ratio, identical dvc.lock): the full params take many minutes; smaller budgets:
# make bench-pipeline PARAMS=benchmarks/params-small.yaml; REPEAT=3: three pairs and their medians
bench-pipeline: $(STAMP)  ## serial dvc repro against the runner, in two fresh clones
	$(BIN)/python -m benchmarks.pipeline $(if $(PARAMS),--params $(PARAMS)) $(if $(REPEAT),--repeat $(REPEAT))

# GIFs of every trained agent's first evaluation episode, rendered offscreen (reports/videos/).
videos: $(STAMP)  ## GIFs of every trained agent's first evaluation episode
	$(BIN)/python -m tools.video

# One agent live in a window, on a desktop: make play EXP=pendulum-ppo SEED=0
play: $(STAMP)  ## one agent live in a window: make play EXP=pendulum-ppo SEED=0
	$(BIN)/python -m tools.video --live --exp $(EXP) --seed $(SEED)

lint: $(STAMP)  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Regenerate requirements.txt from requirements.in: every package pinned with == and its hashes,
# the existing pins kept (pip-compile --upgrade-package NAME moves one). Only PyPI and the index
# lines of requirements.in are asked (pip's own configuration is ignored); FIND_LINKS=DIR adds a
# folder of wheels, for a machine that cannot reach PyTorch's index.
lock: $(STAMP)  ## regenerate requirements.txt from requirements.in
	CUSTOM_COMPILE_COMMAND="make lock" PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile --quiet \
		--generate-hashes --strip-extras --allow-unsafe --no-emit-find-links \
		$(if $(FIND_LINKS),--find-links $(FIND_LINKS) --pip-args "--retries 0") \
		--annotation-style=line -o requirements.txt requirements.in

# The studies run the one pipeline: copy dvc.yaml into each (tests/test_dvc_yaml.py checks it).
# Copies, not links: DVC reads a git revision's files without following links (dvc metrics diff).
studies:  ## copy dvc.yaml into each study
	for study in studies/*/; do cp dvc.yaml $$study/dvc.yaml; done

# Record this machine's physics digests as the references (deliberately; then commit them).
digests: $(STAMP)  ## record this machine's physics digests as the references
	for params in params.yaml $(wildcard studies/*/params.yaml); do \
		$(BIN)/python -m tools.digests --params $$params || exit 1; done

clean-venv:  ## delete .venv
	rm -rf $(VENV)
