# Everything a newcomer needs: `make demo` and `make test` work from a clean clone with nothing installed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo demo-train demo-rl demo-transformer test bench bench-gpu bench-gpu-scaling clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned in pyproject.toml (torch==2.13.0): on a CPU machine pip takes the CPU wheel. The test extra
	# brings the optional ones too (plot, tensorboard, export, rl, seq2seq), so their tests run.
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo
	$(VENV)/bin/darts-nas search --preset demo
	$(VENV)/bin/darts-nas plot runs/demo
	$(VENV)/bin/darts-nas report runs/demo
	@echo "the demo's pictures are in runs/demo/plots/ and its report in runs/demo/report.html"

demo-train: $(STAMP)
	rm -rf runs/eval-demo
	$(VENV)/bin/darts-nas train --preset eval-demo --genotype DARTS_V2

# RL-DARTS: a small supernet PPO agent on the corridor task (8k frames), its cell and pictures
demo-rl: $(STAMP)
	rm -rf runs/rl-demo
	$(VENV)/bin/darts-nas rl search --preset rl-demo --out runs/rl-demo
	$(VENV)/bin/darts-nas plot runs/rl-demo

demo-transformer: $(STAMP)
	rm -rf runs/transformer-demo runs/transformer-demo-train
	$(VENV)/bin/darts-nas search --preset rev-transformer-copy --out runs/transformer-demo
	$(VENV)/bin/darts-nas train --preset rev-transformer-copy-train --genotype runs/transformer-demo \
		--out runs/transformer-demo-train
	$(VENV)/bin/darts-nas plot runs/transformer-demo

test: $(STAMP)
	$(PY) -m pytest tests

bench: $(STAMP)
	$(VENV)/bin/darts-nas bench search --device cpu
	$(VENV)/bin/darts-nas bench train --device cpu

# The GPU figures of the README's targets, on a machine that already has CUDA PyTorch (no venv: PYTHONPATH=src); JSON in runs/bench-gpu.
# Each line is one child process per configuration; the tables land in docs/benchmarks.md by hand, with the date.
GPU_BENCH := PYTHONPATH=src $(PYTHON) -m darts_nas bench
bench-gpu:
	mkdir -p runs/bench-gpu
	$(GPU_BENCH) search --device cuda --order 1 2 --json runs/bench-gpu/search-plain.json
	$(GPU_BENCH) search --device cuda --order 1 2 --cuda-graphs --json runs/bench-gpu/search-graphs.json
	$(GPU_BENCH) search --device cuda --order 1 2 --cuda-graphs --fuse-ops --precision fp32 bf16 --json runs/bench-gpu/search-fused.json
	$(GPU_BENCH) search --device cuda --order 1 --checkpoint-cells --cuda-graphs --fuse-ops --json runs/bench-gpu/search-ckpt.json
	$(GPU_BENCH) train --device cuda --precision fp32 bf16 --json runs/bench-gpu/train-plain.json
	$(GPU_BENCH) train --device cuda --precision fp32 bf16 --cuda-graphs --json runs/bench-gpu/train-graphs.json

# Distributed scaling on every GPU of the machine (torchrun, NCCL), against one process with the same batch per GPU.
GPUS = $(shell $(PYTHON) -c "import torch; print(torch.cuda.device_count())")
bench-gpu-scaling:
	mkdir -p runs/bench-gpu
	$(GPU_BENCH) search --device cuda --nproc $(GPUS) --order 1 2 --json runs/bench-gpu/search-scaling.json
	$(GPU_BENCH) train --device cuda --nproc $(GPUS) --json runs/bench-gpu/train-scaling.json

clean:
	rm -rf $(VENV) runs/demo runs/eval-demo build src/*.egg-info
