# The README's two commands: `make pipeline` runs the pipeline on its defaults, `make test` runs the
# tests. Each first sets up whatever a fresh Debian/Ubuntu machine lacks (system packages, .venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SYSTEM_PACKAGES := git python3-venv dataset-fashion-mnist

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# No usage statistics leave the machine.
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: pipeline test bench setup system-packages

pipeline: setup
	dvc repro

test: setup
	ruff check .
	pytest

bench: setup
	python bench/data_stages.py
	python bench/train_speed.py
	python bench/flow_overhead.py
	python bench/drift_detection.py

setup: system-packages $(VENV)/.installed

system-packages:
	@missing=$$(for package in $(SYSTEM_PACKAGES); do dpkg -s $$package >/dev/null 2>&1 || echo $$package; done); \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:" $$missing; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Reinstalled whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@
