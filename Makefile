# lossbook: `make book` builds the HTML book, `make test` runs every check.
# Both create the virtual environment (.venv) on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Jupyter kernels started by the tools must be this environment's Python.
export PATH := $(BIN):$(PATH)
export PYTHONDONTWRITEBYTECODE := 1
# Chapters train tiny models: one thread is faster on them and gives the same digits on
# any machine, so the stored outputs that nbval compares do not depend on the core count.
export OMP_NUM_THREADS := 1

# torchvision is a test oracle; 2.14.1/0.29.1 is the pair that imports together here.
TORCH := torch==2.14.1 torchvision==0.29.1
MATHJAX := mathjax@3.2.2
MATHJAX_JS := .vendor/static/mathjax/tex-chtml.js

.PHONY: venv export sync book serve test chromium lab bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# MathJax is served by the book itself, so the HTML needs no network.
$(MATHJAX_JS):
	rm -rf .vendor/npm .vendor/static/mathjax
	mkdir -p .vendor/npm .vendor/static
	npm install --silent --no-save --no-audit --no-fund --prefix .vendor/npm $(MATHJAX)
	mkdir -p .vendor/static/mathjax
	cd .vendor/npm/node_modules/mathjax/es5 && cp -r tex-chtml.js input output ui a11y adaptors sre $(CURDIR)/.vendor/static/mathjax/

# Write lossbook/ from the chapters' export cells, then the catalogue and API pages from lossbook/.
export: venv
	$(BIN)/python tools/export.py
	$(BIN)/python tools/catalogue.py

# After editing a chapter: export, re-execute every chapter (or CHAPTERS=...), export again.
sync: venv
	$(BIN)/python tools/export.py
	$(BIN)/python tools/notebooks.py execute $(CHAPTERS)
	$(BIN)/python tools/export.py
	$(BIN)/python tools/catalogue.py

book: venv $(MATHJAX_JS)
	$(BIN)/python tools/export.py
	$(BIN)/python tools/catalogue.py
	$(BIN)/jupyter-book build . --builder html --warningiserror --nitpick --keep-going
	@echo "The book is in _build/html/index.html"

# Preview the built book at http://127.0.0.1:8000 (PORT=... to change).
PORT ?= 8000
serve: book
	$(BIN)/python -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

# tests/test_browser.py drives Debian's Chromium; it fails (never skips) without one.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "Chromium is missing: install Debian's chromium package (sudo apt-get install chromium)"; fi; }

test: venv $(MATHJAX_JS) chromium
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python benchmarks/losses.py

lab: venv
	$(BIN)/python -m pip install --quiet -e ".[lab]"
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS) \
		--ServerApp.contents_manager_class=jupytext.TextFileContentsManager book/

clean:
	rm -rf _build .vendor
