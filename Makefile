# mfgx developer tasks. Every target that runs code first makes sure .venv is installed:
# it is created with $(PYTHON) when .venv/bin/python is missing, and (re)installed when
# pyproject.toml is newer than the stamp .venv/.installed. After that, no network is needed.
#
#   make demo        COVID first wave: SIR vs SIR MFGs on bundled WHO case data (quick); report in outputs/demo
#   make test        the test suite (fast tests; ARGS="-k name" passes options to pytest)
#   make test-slow   the slow tests only
#   make bench       benchmarks (finite engine, calibration adjoints, neural SDEs, exact Nash, sweeps on Ray;
#                    vs the calibration paper's code with PAPER_CODE=DIR, see benchmarks/paper_calibration.py)
#   make bench-peers mfgx vs mfglib, OpenSpiel and BenchMFG side by side (installs .venv-peers)
#   make bench-gen-peers mfgx CNF/SGM vs torchcfm and flowjax on the 2-D toys (installs .venv-gen-peers)
#   make clean       remove outputs and caches (distclean: also .venv)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
# The suite runs in 2 worker processes (pytest-xdist): about 1.6× faster on 2 cores, and each process
# stays below the kernel's memory-map limit that thousands of XLA executables in one process reach.
WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-slow bench bench-peers bench-gen-peers clean distclean

help:
	@sed -n 's/^#   //p' Makefile

venv:
	@if [ ! -x $(BIN)/python ]; then \
		echo "creating $(VENV) with $(PYTHON)"; \
		$(PYTHON) -m venv $(VENV) && rm -f $(STAMP); \
	fi
	@if [ ! -f $(STAMP) ] || [ pyproject.toml -nt $(STAMP) ]; then \
		echo "installing mfgx and its dependencies into $(VENV) (a few minutes the first time)"; \
		$(BIN)/pip install -q --upgrade pip && \
		$(BIN)/pip install -q -e '.[test,data]' && \
		touch $(STAMP); \
	fi

demo: venv
	$(BIN)/mfgx demo $(ARGS)

test: venv
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup $(ARGS)

test-slow: venv
	$(BIN)/python -m pytest -n $(WORKERS) -m slow $(ARGS)

bench: venv
	$(BIN)/python benchmarks/run.py $(ARGS)
	$(BIN)/python benchmarks/calibration.py
	$(BIN)/python benchmarks/neural.py
	$(BIN)/python benchmarks/neural_recovery.py
	$(BIN)/python benchmarks/exact_nash.py
	$(BIN)/python benchmarks/sweep.py
	$(BIN)/python benchmarks/generative.py
	@if [ -n "$(PAPER_CODE)" ]; then bash benchmarks/peers/install_paper.sh; fi
	$(BIN)/python benchmarks/paper_calibration.py $(if $(PAPER_CODE),--paper-code $(PAPER_CODE),)

bench-peers: venv
	bash benchmarks/peers/install.sh
	$(BIN)/python benchmarks/peers/side_by_side.py $(ARGS)
	$(BIN)/python benchmarks/peers/side_by_side_benchmfg.py

bench-gen-peers: venv
	bash benchmarks/peers/install_generative.sh
	$(BIN)/python benchmarks/peers/side_by_side_generative.py $(ARGS)

clean:
	rm -rf outputs build dist src/*.egg-info .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
