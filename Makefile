# Corral — developer and CI entry points.
#   make demo       install what is missing, start Docker, run the demo
#   make test       install + start test services (Docker, PostgreSQL, etcd), run the whole suite
#   make test-fast  same, without tests marked `slow`
# Every install step checks first whether the thing is already there.

SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        ?= .venv
VENV_PY     := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
EXTRAS      ?= server,dev
PYTEST_ARGS ?=
BOOTSTRAP   := configs/bootstrap

# Re-install the package only when its packaging metadata changed.
PKG_META    := $(wildcard pyproject.toml setup.py setup.cfg)

.PHONY: help venv docker test-deps test test-fast demo clean distclean

help:
	@echo "targets: venv docker test-deps test test-fast demo clean distclean"
	@echo "  PYTEST_ARGS='...'  extra pytest arguments for test/test-fast"

venv: $(STAMP)

$(VENV_PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PKG_META) | $(VENV_PY)
	$(VENV_PY) -m pip install --disable-pip-version-check --progress-bar off -e '.[$(EXTRAS)]'
	touch $@

docker:
	bash $(BOOTSTRAP)/ensure-docker.sh

# docker.io + postgresql + etcd-server in one apt transaction when missing, then
# start dockerd. PostgreSQL/etcd services are not started: fixtures run private ones.
test-deps:
	bash $(BOOTSTRAP)/ensure-test-deps.sh

test: venv test-deps
	$(VENV_PY) -m pytest -q -ra $(PYTEST_ARGS)

test-fast: venv test-deps
	$(VENV_PY) -m pytest -q -ra -m "not slow" $(PYTEST_ARGS)

demo: venv docker
	bash $(BOOTSTRAP)/demo.sh

clean:
	rm -rf .pytest_cache .hypothesis build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
