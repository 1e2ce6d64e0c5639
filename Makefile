# The four stages and their tests, from a fresh clone. `make help` lists the targets.
VENV     ?= .venv
PYTHON   ?= python3
PY       := $(VENV)/bin/python
SUBMIT   := $(VENV)/bin/spark-submit
MASTER   ?= local[*]
LANGS    ?= en
OUT      ?= out/corpus
VOCAB    ?= 8000
# spark-submit from the venv finds spark-class through PATH.
export PATH                  := $(abspath $(VENV))/bin:$(PATH)
export SPARK_CONF_DIR        := $(abspath conf)
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

# --- the whole corpus: every corpus stage, the tokenizer, the shards, the datasheet --------
CORPUS_CONFIG ?= configs/corpus.yaml
SUBMIT_FLAGS  ?= --driver-memory 4g

corpus: setup
	@test -n "$(INPUT)" || { echo "error: make corpus needs INPUT=PATH (raw files, folders or globs)" >&2; exit 2; }
	$(SUBMIT) --master "$(MASTER)" $(SUBMIT_FLAGS) jobs/corpus.py --input $(INPUT) \
		--output $(OUT) --config $(CORPUS_CONFIG) --languages $(LANGS)
	$(PY) -m tokenizer.train --input $(OUT)/final --output $(OUT)/tokenizer \
		--vocab-size $(VOCAB) --overwrite
	$(SUBMIT) --master "$(MASTER)" $(SUBMIT_FLAGS) jobs/encode.py --input $(OUT)/final \
		--tokenizer $(OUT)/tokenizer --output $(OUT)/tokens --overwrite
	$(PY) -m pipeline.report --corpus $(OUT) --tokens $(OUT)/tokens

# --- the demo: text already on this machine → corpus → tokenizer → a tiny model -----------
# One torch thread: the tiny model is too small to gain from two, and on a busy machine two
# threads ran 7x slower (3.0 s vs 0.45 s a step, measured here).
DEMO_OUT    ?= demo
DEMO_INPUT  ?=
# The languages the demo corpus has most of (as in configs/demo.yaml). A variable, because
# commas inside $(or ...) would split its arguments and keep only "en".
DEMO_LANGS  ?= en,de,fr,es,it,pt,nl,sv,pl,ru,ja,zh,uk,cs
DEMO_STEPS  ?= 400
DEMO_TRAIN  ?= preset=tiny max_steps=$(DEMO_STEPS) batch_size=8 seq_len=256 eval_every=100 ckpt_every=200 threads=1

demo: setup
	@if [ -z "$(DEMO_INPUT)" ] && [ ! -f $(DEMO_OUT)/raw/_demo_corpus.json ]; then \
		$(PY) -m tools.demo_corpus --output $(DEMO_OUT)/raw --overwrite; fi
	$(MAKE) --no-print-directory corpus INPUT="$(or $(DEMO_INPUT),$(DEMO_OUT)/raw)" \
		OUT=$(DEMO_OUT)/corpus LANGS=$(DEMO_LANGS) \
		CORPUS_CONFIG=configs/demo.yaml VOCAB=$(VOCAB)
	rm -rf $(DEMO_OUT)/model
	$(PY) -m trainer.run --data $(DEMO_OUT)/corpus/tokens --out $(DEMO_OUT)/model $(DEMO_TRAIN)
	$(PY) -m trainer.report $(DEMO_OUT)/model
	@echo; echo "=== samples from the model ($(DEMO_OUT)/model/samples.txt) ==="; \
		head -c 2000 $(DEMO_OUT)/model/samples.txt; echo
	@echo "corpus datasheet: $(abspath $(DEMO_OUT)/corpus/report.html)"
	@echo "training curves:  $(abspath $(DEMO_OUT)/model/report.png)"
