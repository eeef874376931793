# The two commands: `make book` (set up, execute every lesson, build the HTML) and `make test`
# (everything CI checks). Nothing needs to be installed first but Python 3.11 and make.
SHELL   := /bin/bash
PYTHON  ?= $(shell command -v python3.11 || command -v python3)
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
LESSONS := $(shell grep -rl --include='*.md' '^kernelspec:' book | sort)
NBDIR   := _build/notebooks
JB_FLAGS := -W -n --keep-going

.PHONY: help venv book notebooks ledger test test-lib test-lessons test-site lab browser clean
help:
	@echo "make book   set up .venv, execute every lesson, build the HTML into _build/html"
	@echo "make test   library tests + every lesson run by nbval + warnings-as-errors build + site tests"
	@echo "make lab    JupyterLab on book/, lessons open as notebooks"
	@echo "make ledger regenerate book/appendix/claims-ledger.md from the catalogue and the lessons"
	@echo "make clean  remove _build (the execution cache too)"

venv: $(STAMP)
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps -e .
	@touch $(STAMP)

ledger: $(STAMP)
	$(BIN)/python -m lessons_lib.claims book

book: $(STAMP) ledger
	@start=$$(date +%s); \
	$(BIN)/jupyter-book build . $(JB_FLAGS) && \
	echo "Built in $$(( $$(date +%s) - start )) s. Open $(CURDIR)/_build/html/index.html"

# The .ipynb that nbval runs (and that Binder users could download) are generated, never edited.
notebooks: $(STAMP)
	@rm -rf $(NBDIR)
	@for f in $(LESSONS); do \
	  out=$(NBDIR)/$${f#book/}; out=$${out%.md}.ipynb; mkdir -p $$(dirname $$out); \
	  $(BIN)/jupytext --quiet --to ipynb -o $$out $$f || exit 1; \
	done
	@echo "generated $(words $(LESSONS)) notebooks in $(NBDIR)"

test: test-lib test-lessons test-site

test-lib: $(STAMP)
	$(BIN)/python -m pytest tests --ignore=tests/site -q

test-lessons: notebooks
	PYTHONPATH=tests $(BIN)/python -m pytest $(NBDIR) -p lesson_budget --nbval-lax \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg --durations=0 -q -p no:cacheprovider

test-site: $(STAMP) ledger browser
	rm -rf _build/html
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	$(BIN)/python -m pytest tests/site -q

# Headless Chromium for the test that opens the built site in a real browser.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { echo "installing chromium (Debian package) for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lab: $(STAMP)
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp binder/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	$(BIN)/jupyter lab book/

clean:
	rm -rf _build
