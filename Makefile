# The two commands a user needs: `make repro` (run the pipeline) and `make test`.
# Both create .venv from requirements.txt when it is missing or older than the lock.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`: put the venv first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: repro test test-slow test-cpus verify verify-stats bench bench-pipeline videos play lint lock studies digests clean-venv

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps -r requirements.txt
	$(BIN)/python -m pip check
	touch $@

# The stale stages side by side on every core (or a Ray cluster: RAY_ADDRESS); JOBS=N: at most N.
repro: $(STAMP)
	$(BIN)/python -m tools.run $(if $(JOBS),--jobs $(JOBS))

test: $(STAMP)
	$(BIN)/python -m pytest

# The slow tests (the pipeline under simulated machines): minutes, not seconds.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow --ignore tests/test_other_cpus.py

# The same bytes on other CPUs: every algorithm's train and evaluate stages on emulated Intel and
# AMD CPUs (qemu-user, installed by the test when missing), against a native run; the two models run
# at once, one core each.
test-cpus: $(STAMP)
	$(BIN)/python -m pytest -m slow -s tests/test_other_cpus.py

# Rerun the committed pipeline from nothing in a fresh clone, with the runner (JOBS=N: at most N
# CPUs); compare every output with dvc.lock.
# A study: make verify PIPELINE=studies/double-pendulum
# On another CPU, emulated (train and evaluate stages; ~17x slower): make verify CPU=Haswell-v4
PIPELINE ?= .
verify: $(STAMP)
	$(BIN)/python -m tools.verify --pipeline $(PIPELINE) $(if $(CPU),--cpu $(CPU)) $(if $(JOBS),--jobs $(JOBS))

# The same, for a machine whose bytes cannot match: compare evaluations statistically.
verify-stats: $(STAMP)
	$(BIN)/python -m tools.verify --stats --pipeline $(PIPELINE)

# Where users wait, as ratios against anchors measured in the same run (benchmarks/speed.py),
# then the speed and sample efficiency of the last runs here: the main pipeline and every study.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.speed
	$(BIN)/python -m benchmarks.bench . $(wildcard studies/*)

# The default pipeline from nothing in two fresh clones: serial `dvc repro` against the runner
# (wall times, ratio, identical dvc.lock): the full params take many minutes; smaller budgets:
# make bench-pipeline PARAMS=benchmarks/params-small.yaml; REPEAT=3: three pairs and their medians
bench-pipeline: $(STAMP)
	$(BIN)/python -m benchmarks.pipeline $(if $(PARAMS),--params $(PARAMS)) $(if $(REPEAT),--repeat $(REPEAT))

# GIFs of every trained agent's first evaluation episode, rendered offscreen (reports/videos/).
videos: $(STAMP)
	$(BIN)/python -m tools.video

# One agent live in a window, on a desktop: make play EXP=pendulum-ppo SEED=0
play: $(STAMP)
	$(BIN)/python -m tools.video --live --exp $(EXP) --seed $(SEED)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Regenerate requirements.txt from requirements.in (every package pinned with ==).
# The CPU wheel's local label (+cpu) is dropped: `torch==2.13.0` matches it.
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --strip-extras --allow-unsafe --no-emit-find-links --no-emit-index-url \
		--annotation-style=line -o requirements.txt requirements.in
	sed -i 's/^torch==\([0-9.]*\)+cpu/torch==\1/' requirements.txt

# The studies run the one pipeline: copy dvc.yaml into each (tests/test_dvc_yaml.py checks it).
# Copies, not links: DVC reads a git revision's files without following links (dvc metrics diff).
studies:
	for study in studies/*/; do cp dvc.yaml $$study/dvc.yaml; done

# Record this machine's physics digests as the references (deliberately; then commit them).
digests: $(STAMP)
	for params in params.yaml $(wildcard studies/*/params.yaml); do \
		$(BIN)/python -m tools.digests --params $$params || exit 1; done

clean-venv:
	rm -rf $(VENV)
