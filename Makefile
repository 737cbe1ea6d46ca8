# The README's two commands: `make pipeline` runs the pipeline on its defaults, `make test` runs the
# tests. Each first sets up whatever a fresh Debian/Ubuntu machine lacks (system packages, .venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SYSTEM_PACKAGES := git python3-venv dataset-fashion-mnist
# The tests also open the reports in a real browser.
TEST_SYSTEM_PACKAGES := chromium

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# No usage statistics leave the machine.
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: pipeline test bench setup gpu system-packages node test-system-packages deploy worker

# With a team's DVC remote configured (docs/team.md), what it has for this commit is pulled first, so a stage
# reruns only where this clone differs; without one, everything is built here.
pipeline: setup
	fashion-team pull --if-configured
	dvc repro

# The Prefect server's side of the deployments in prefect.yaml: work pool, training limit, automations, deployments
# (flows/deploy.py; PREFECT_API_URL names the server). Then `make worker` on every machine that runs them.
deploy: setup
	python -m flows.deploy

# A process worker in this clone: it runs the deployments' flow runs here, after bringing the clone level with the
# team's remotes (prefect.yaml's pull steps). Any number of machines may run one (docs/orchestration.md). One run at
# a time: runs of one clone queue for its workspace anyway, so a busy machine leaves the next run to a free one.
worker: setup
	prefect worker start --pool fashion-mnist --limit 1

test: setup test-system-packages
	ruff format --check .
	ruff check .
	pytest

bench: setup
	python bench/data_stages.py
	python bench/train_speed.py
	python bench/flow_overhead.py
	python bench/drift_speed.py
	python bench/drift_power.py
	python bench/live_accuracy.py
	python bench/predict_speed.py
	python bench/serve_load.py
	python bench/unfamiliarity_methods.py
	python bench/predict_real_pictures.py
	python bench/continuous_training.py

setup: system-packages node $(VENV)/.installed node_modules/.package-lock.json

define install_missing
	@missing=$$(for package in $(1); do dpkg -s $$package >/dev/null 2>&1 || echo $$package; done); \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:" $$missing; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
endef

system-packages:
	$(call install_missing,$(SYSTEM_PACKAGES))

test-system-packages:
	$(call install_missing,$(TEST_SYSTEM_PACKAGES))

# Node.js and npm fetch the Data Docs' scripts and styles (package.json). Checked by command rather than by
# package, since Node.js is often installed from elsewhere than Debian's archive.
node:
	@command -v npm >/dev/null || $(MAKE) --no-print-directory system-packages SYSTEM_PACKAGES="nodejs npm"

# Reinstalled whenever package-lock.json changes.
node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Reinstalled whenever pyproject.toml changes; a GPU environment (make gpu) gets its GPU build back.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	if [ -f $(VENV)/.gpu ]; then $(swap_in_gpu_build); fi
	touch $@

# The GPU build of TensorFlow in place of the CPU-only one that pyproject.toml installs on x86-64 (docs/gpu.md).
# An extra cannot do it: extras add packages, and both builds install the same `tensorflow` module, so the
# CPU build must go. Same version as the CPU build, so Keras and everything else stay as tested.
define swap_in_gpu_build
	version=$$($(VENV)/bin/python -c "import tensorflow; print(tensorflow.__version__)" 2>/dev/null); \
	$(VENV)/bin/pip uninstall --quiet -y tensorflow-cpu tensorflow; \
	$(VENV)/bin/pip install --quiet "tensorflow[and-cuda]==$$version"
endef

gpu: setup
	touch $(VENV)/.gpu
	$(swap_in_gpu_build)
	dvc repro preprocess
	python bench/gpu_check.py
