# qfeat — `make help` lists the targets. Every target installs first (idempotent).
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.qfeat-installed
DATASET ?= demo

.DEFAULT_GOAL := help
.PHONY: help install demo features train test test-fast test-unit lint format docs bench bench-gpu gpu-wheels bench-scale clean

help: ## show this list (one line per target)
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv with the pinned stack (torch first, then the lock files)

# torch and torchvision go first and pinned: the CPU-only torch 2.13 wheel pip may find
# otherwise breaks torchvision (`operator torchvision::nms does not exist`). The stamp makes this idempotent and
# re-runs it when the lock file or pyproject changes.
# The pair's versions live in requirements.lock only.
# sam2 (SAM 2.1) is published as a source package whose build imports torch: it is built
# against the torch installed here (an isolated build would first download another torch,
# about 3 GB) and without its optional CUDA extension (SAM2_BUILD_CUDA=0).
TORCH   := $(shell grep -E '^torch(vision)?==' requirements.lock)
SETUPTOOLS := $(shell grep -E '^setuptools==' requirements-dev.lock)
$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q $(TORCH) $(SETUPTOOLS)
	SAM2_BUILD_CUDA=0 $(BIN)/python -m pip install -q --no-build-isolation \
	  -r requirements.lock -r requirements-dev.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP) ## the whole flow on the built-in demo sets: images (RSA head), then videos (SCMA)
	$(MAKE) --no-print-directory features DATASET=demo
	$(MAKE) --no-print-directory train DATASET=demo
	$(MAKE) --no-print-directory features DATASET=demo-video
	$(MAKE) --no-print-directory train DATASET=demo-video

features: $(STAMP) ## compute cached features of DATASET (default demo): make features DATASET=koniq
	$(BIN)/qfeat features $(DATASET)

# TRAINER, else the trainer registry's default for the dataset's modality (the adapter knows it)
DEFAULT_TRAINER = $$($(BIN)/python -c "import sys; from qfeat.pipeline.datasets import get_adapter; from qfeat.trainers.registry import trainer_for; print(trainer_for(get_adapter(sys.argv[1]).modality).name)" $(DATASET))
train: $(STAMP) ## train on DATASET's cache: make train DATASET=demo-video [TRAINER=probe]
	$(BIN)/qfeat train $(if $(TRAINER),$(TRAINER),$(DEFAULT_TRAINER)) $(DATASET)

test: $(STAMP) ## run the whole test suite (what CI runs)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP) ## the suite without slow and browser tests
	$(BIN)/python -m pytest -q -m "not slow and not browser"

test-unit: $(STAMP) ## the edit loop's tier: no Dask cluster, no subprocess (tests/conftest.py STARTS)
	QFEAT_TEST_INLINE=1 $(BIN)/python -m pytest -q --unit

lint: $(STAMP) ## ruff: lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

docs: $(STAMP) ## regenerate docs/commands.md and docs/settings.md from the code
	$(BIN)/python -m qfeat.cli.docgen

format: $(STAMP) ## ruff: fix what can be fixed and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## benchmarks on this machine -> benchmarks/results/latest.json
	$(BIN)/python -m benchmarks.cache_read
	$(BIN)/python -m benchmarks.frames
	$(BIN)/python -m benchmarks.decode
	$(BIN)/python -m benchmarks.stages
	$(BIN)/python -m benchmarks.sam
	$(BIN)/python -m benchmarks.sam_speed
	$(BIN)/python -m benchmarks.cpu_bf16
	$(BIN)/python -m benchmarks.model_build
	$(BIN)/python -m benchmarks.cluster_idle
	$(BIN)/python -m benchmarks.train_rsa
	$(BIN)/python -m benchmarks.train_scma
	$(BIN)/python -m benchmarks.probe_vs_heads

bench-scale: $(STAMP) ## per-item cost and memory at several dataset sizes -> results/latest.json
	$(BIN)/python -m benchmarks.scale $(SCALE_ARGS)

# No install step: the GPU machine has no network. There, python3 has torch, transformers,
# timm, pyarrow, h5py, pandas, typer, rich, safetensors and scipy; what it lacks travels
# as wheels (`make gpu-wheels` here, then carry .whl/ and run benchmarks/gpu_run.sh).
GPU_PY      := $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
BENCH_OUT   ?= benchmarks/results/gpu.json
GPU_CARRY   := open_clip_torch ftfy wcwidth segment-anything pycocotools dask distributed \
               partd locket tblib tornado zict hydra-core omegaconf portalocker
# published as source only: built here into pure-Python wheels (sam2 without its CUDA part)
GPU_BUILD   := sam2 iopath antlr4-python3-runtime
GPU_PLATFORM := --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
                --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64

bench-gpu: ## real-size models on a CUDA GPU -> BENCH_OUT (default benchmarks/results/gpu.json)
	$(GPU_PY) -m benchmarks.gpu --out $(BENCH_OUT)

gpu-wheels: $(STAMP) ## (here) wheels the GPU machine lacks, and qfeat's own, into .whl/
	mkdir -p .whl
	for p in $(GPU_CARRY); do \
	  pin=$$(grep -i "^$$p==" requirements.lock || echo $$p); \
	  $(BIN)/python -m pip download -q --no-deps --only-binary=:all: $(GPU_PLATFORM) -d .whl "$$pin" || exit 1; \
	done
	SAM2_BUILD_CUDA=0 $(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w .whl \
	  $$(for p in $(GPU_BUILD); do grep -i "^$$p==" requirements.lock; done)
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w .whl .

clean: ## remove build artefacts only (never data/, qfeat-cache/ or runs/)
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print -exec rm -rf {} +
