# Set-up is two commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
REVPROF := $(VENV)/bin/revprof
STAMP := $(VENV)/.revprof-installed

.PHONY: demo test test-fast typecheck install system-deps bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# A CPU wheel of torch 2.13.0 lies on these machines; a GPU user's own torch is kept.
# The extras monai, nnunet and torchvision (pyproject.toml) go in with --no-deps: their declared
# dependencies (torch>=2.8, timm -> torchvision, torchvision's exact torch) would replace the torch
# above; at run time they need only torch, numpy and (torchvision) pillow. torchvision is the
# release made for the installed torch (torch 2.N pairs with torchvision 0.N+15: 2.13 -> 0.28).
$(STAMP): $(PY) pyproject.toml Makefile
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[test,bench,dashboard]"
	$(PIP) install --quiet --no-deps "monai>=1.5" "dynamic-network-architectures>=0.4" "pillow>=5.3" \
		"torchvision==$$($(PY) -c "import torch; print('0.%d.*' % (int(torch.__version__.split('.')[1]) + 15))")"
	@touch $(STAMP)

install: $(STAMP)

system-deps:
	@scripts/system-deps.sh

# The main job: a quick accuracy-memory sweep on synthetic BraTS-format data with the embedded
# store, then its HTML report.
demo: $(STAMP)
	$(REVPROF) measure --patch 128 --backend simulate
	$(REVPROF) sweep studies/quick.toml
	$(REVPROF) report --study quick --out reports/quick.html
	@echo "report written to reports/quick.html"

# Tests run in TEST_JOBS pytest-xdist workers, one compute thread each. On 2 cores, 2 workers
# took the slow tier from 553 s to 391 s and the fast tier from 165 s to 121 s (see
# docs/benchmarks.md); TEST_JOBS=0 runs in one process. The gpu tests share one worker.
TEST_JOBS ?= 2
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_JOBS) --dist loadgroup

# The whole suite (what CI runs): the type check, then every test.
test: $(STAMP) system-deps typecheck
	$(PYTEST)

# mypy over the package ([tool.mypy] in pyproject.toml); about 50 s cold on 2 cores, seconds warm.
typecheck: $(STAMP)
	$(PY) -m mypy

# The developer loop: everything not marked slow (tiny shapes, no servers started per test file).
test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

bench: $(STAMP)
	$(REVPROF) bench --out benchmarks/results --update-docs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .revprof
