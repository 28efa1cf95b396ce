# qfeat — `make help` lists the targets. Every target installs first (idempotent).
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.qfeat-installed
DATASET ?= demo

.DEFAULT_GOAL := help
.PHONY: help install demo features train test test-fast lint format bench bench-gpu bench-scale clean

help: ## show this list (one line per target)
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv with the pinned stack (torch first, then the lock files)

# torch and torchvision go first and pinned: the CPU-only torch 2.13 wheel pip may find
# otherwise breaks torchvision (see shared RECIPES). The stamp makes this idempotent and
# re-runs it when the lock file or pyproject changes.
$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -r requirements.lock -r requirements-dev.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP) ## the whole flow on the built-in demo sets: images (RSA head), then videos (SCMA)
	$(MAKE) --no-print-directory features DATASET=demo
	$(MAKE) --no-print-directory train DATASET=demo
	$(MAKE) --no-print-directory features DATASET=demo-video
	$(MAKE) --no-print-directory train DATASET=demo-video

features: $(STAMP) ## compute cached features of DATASET (default demo): make features DATASET=koniq
	$(BIN)/qfeat features $(DATASET)

# the trainer registry's trainer for the dataset's modality (the adapter knows it)
train: $(STAMP) ## train on DATASET's cache (rsa for images, scma for videos): make train DATASET=demo-video
	$(BIN)/qfeat train $$($(BIN)/python -c "import sys; from qfeat.pipeline.datasets import get_adapter; from qfeat.trainers.registry import trainer_for; print(trainer_for(get_adapter(sys.argv[1]).modality).name)" $(DATASET)) $(DATASET)

test: $(STAMP) ## run the whole test suite (what CI runs)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP) ## the suite without slow and browser tests, for the edit loop
	$(BIN)/python -m pytest -q -m "not slow and not browser"

lint: $(STAMP) ## ruff: lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff: fix what can be fixed and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## benchmarks on this machine -> benchmarks/results/latest.json
	$(BIN)/python -m benchmarks.cache_read
	$(BIN)/python -m benchmarks.frames
	$(BIN)/python -m benchmarks.stages
	$(BIN)/python -m benchmarks.sam
	$(BIN)/python -m benchmarks.train_rsa
	$(BIN)/python -m benchmarks.train_scma

bench-scale: $(STAMP) ## per-item cost and memory at several dataset sizes -> results/latest.json
	$(BIN)/python -m benchmarks.scale $(SCALE_ARGS)

bench-gpu: $(STAMP) ## real-size models on a CUDA GPU -> benchmarks/results/gpu.json
	$(BIN)/python -m benchmarks.gpu

clean: ## remove build artefacts only (never data/, qfeat-cache/ or runs/)
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print -exec rm -rf {} +
