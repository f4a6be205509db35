# Everything a newcomer needs: `make demo` and `make test` work from a clean clone with nothing installed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo demo-train test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned in pyproject.toml (torch==2.13.0): on a CPU machine pip takes the CPU wheel.
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo
	$(VENV)/bin/darts-nas search --preset demo

demo-train: $(STAMP)
	rm -rf runs/eval-demo
	$(VENV)/bin/darts-nas train --preset eval-demo --genotype DARTS_V2

test: $(STAMP)
	$(PY) -m pytest tests

bench: $(STAMP)
	$(VENV)/bin/darts-nas bench search --device cpu
	$(VENV)/bin/darts-nas bench train --device cpu

clean:
	rm -rf $(VENV) runs/demo runs/eval-demo build src/*.egg-info
