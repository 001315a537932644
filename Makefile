# HRP — the two commands:
#
#   make demo    create .venv, install HRP and the sao desk, build the demo
#                site (SQLite, demo hospital) once, serve it on
#                http://127.0.0.1:8000 and print the demo logins
#   make test    install the test requirements (and Debian chromium with a
#                CJK font for the browser test, when missing) and run the
#                whole suite with pytest on SQLite; with
#                HRP_TEST_DB_URI=postgresql://user@host:5432/ in the
#                environment the same suite runs on PostgreSQL
#
#   make clean-demo   forget the demo site (var/demo)
#
# Variables: PYTHON (interpreter for the new .venv, default python3.11),
# PYTEST_ARGS (extra pytest arguments, e.g. PYTEST_ARGS='-x -k department').

SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

# Installs are recorded by stamp files inside the virtualenv (so a new
# .venv starts from scratch).  An editable install maps the packages when it
# runs, so it is redone when setup.py changes or a package appears.
INSTALL_INPUTS := setup.py $(wildcard apps/*/__init__.py fixtures/__init__.py)
STAMP_DEMO := $(VENV)/.hrp-install
STAMP_TEST := $(VENV)/.hrp-install-test

# Debian packages for the browser test: the desk in headless chromium, and a
# font with Chinese glyphs (without one the zh_CN desk renders as boxes).
CHROMIUM := /usr/bin/chromium
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc
BROWSER_PACKAGES := chromium fonts-wqy-zenhei
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help demo test clean-demo admin-update browser install install-test

help:
	@echo "make demo        serve the demo hospital desk on http://127.0.0.1:8000"
	@echo "make test        run the test suite on SQLite"
	@echo "                 (on PostgreSQL with HRP_TEST_DB_URI=postgresql://...)"
	@echo "make clean-demo  remove the demo site (var/demo)"
	@echo "make admin-update  update the demo site's modules after code changes"

demo: $(STAMP_DEMO)
	$(BIN)/hrp demo

admin-update: $(STAMP_DEMO)
	$(BIN)/hrp admin-update

test: $(STAMP_TEST) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP_DEMO)
install-test: $(STAMP_TEST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP_DEMO): $(INSTALL_INPUTS) | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

# The test extra includes everything `make demo` needs.
$(STAMP_TEST): $(INSTALL_INPUTS) | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	touch $@ $(STAMP_DEMO)

browser:
	@if [ ! -x $(CHROMIUM) ] || [ ! -e $(CJK_FONT) ]; then \
	    echo "Installing $(BROWSER_PACKAGES) (Debian) for the browser test"; \
	    $(SUDO) apt-get update -q && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y -q $(BROWSER_PACKAGES); \
	fi

clean-demo:
	rm -rf var/demo
