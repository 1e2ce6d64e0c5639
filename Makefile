# The four stages and their tests, from a fresh clone. `make help` lists the targets.
VENV     ?= .venv
PYTHON   ?= python3
PY       := $(VENV)/bin/python
SUBMIT   := $(VENV)/bin/spark-submit
MASTER   ?= local[*]
LANGS    ?= en
OUT      ?= out/corpus
VOCAB    ?= 8000
export PYSPARK_PYTHON        := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

.PHONY: help setup test test-fast bench demo corpus clean-outputs

help:
	@echo "make setup        create $(VENV) and install the project"
	@echo "make test         the whole test suite (what CI runs)"
	@echo "make test-fast    the suite without tests marked slow"
	@echo "make bench        every benchmark; one table, bench/results/*.json"
	@echo "make demo         the main job on text already on this machine"
	@echo "make corpus INPUT=... OUT=... [LANGS=en] [MASTER=local[*]]"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v java >/dev/null 2>&1 || { echo "error: Java 17+ not found; Spark needs it (Debian: apt-get install openjdk-17-jre-headless)" >&2; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# The CPU wheel of torch where none is installed; a GPU machine keeps its CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0" || $(PY) -m pip install -q torch
	$(PY) -m pip install -q -e ".[test]"
	touch $@

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $@

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: $(VENV)/.bench-installed
	$(PY) -m bench.all $(BENCH)

clean-outputs:
	rm -rf out demo bench/results/*.png
