# The two quick-start commands:  `make run` (the main job)  and  `make test` (the test suite).
# Both create .venv on first use with Python >= 3.11 and install scratchllm into it, with the
# dev/CI constraints (constraints.txt pins torch to the build our CI machines carry).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean

run: $(STAMP)
	$(BIN)/scratchllm train
	$(BIN)/scratchllm generate --prompt "The for statement" --temperature 0.8 --top-k 40 --seed 1

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/pip install -c constraints.txt -e '.[bench]'
	$(BIN)/pip install -c constraints.txt --no-deps llms-from-scratch
	$(BIN)/python benchmarks/bench_bpe_encode.py
	$(BIN)/python benchmarks/bench_bpe_train.py
	$(BIN)/python benchmarks/bench_window_memory.py
	$(BIN)/python benchmarks/bench_train_step.py
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_word2vec.py --threads 2
	$(BIN)/python benchmarks/bench_classify.py
	$(BIN)/python benchmarks/bench_instruct_batches.py

# llms-from-scratch is the walkthrough's own package, a test-only oracle: our top-k + temperature
# sampling must draw its chapter-5 `generate`'s ids (tests/weights/test_walkthrough_sampling.py).
# --no-deps: it needs only torch, numpy, matplotlib, tqdm and tiktoken, which we have; its
# declared dependencies pull TensorFlow. It declares Python <= 3.13; on a newer one the test skips.
$(STAMP): pyproject.toml constraints.txt Makefile
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "scratchllm needs Python >= 3.11; run e.g. 'make PYTHON=python3.12 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet -c constraints.txt --no-deps llms-from-scratch || \
		echo "llms-from-scratch does not install on this Python: its oracle test will skip"
	@touch $(STAMP)

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
