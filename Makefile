# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv and install what they need (torch first, then the package).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test clean

# torch==2.13.0 goes in first, on its own: with it installed, the package's torch>=2.3
# requirement is already met and pip pulls nothing more (no CUDA wheels on CPU machines).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/trainground demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
