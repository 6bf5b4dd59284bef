# Corral — developer and CI entry points.
#   make demo       install what is missing, start Docker, run the demo
#   make test       install + start test services (Docker, PostgreSQL, etcd), run the whole suite
#   make test-fast  same, without tests marked `slow`
#   make webui      build the web UI (manager/webui -> manager/webui/dist), only when its sources changed
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

# The web UI: npm ci when the lockfile changed, a build when any source did.
WEBUI        := manager/webui
WEBUI_DEPS   := $(WEBUI)/node_modules/.corral-installed
WEBUI_STAMP  := $(WEBUI)/dist/.corral-built
WEBUI_SRC    := $(shell find $(WEBUI)/src -type f 2>/dev/null) \
                $(wildcard $(WEBUI)/index.html $(WEBUI)/vite.config.ts $(WEBUI)/tsconfig.json $(WEBUI)/public/*)
# The saved OpenAPI document is refreshed from the server code it describes.
OPENAPI_SRC  := $(shell find common manager -name '*.py' -not -path '*/migrations/*' 2>/dev/null)

.PHONY: help venv docker test-deps node-deps webui test test-fast demo clean distclean

help:
	@echo "targets: venv docker test-deps webui test test-fast demo clean distclean"
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

# Node.js + npm for the UI build, and chromium for the browser tests (when missing).
node-deps:
	bash $(BOOTSTRAP)/ensure-node.sh --with-chromium

$(WEBUI_DEPS): $(WEBUI)/package.json $(WEBUI)/package-lock.json
	cd $(WEBUI) && npm ci --no-audit --no-fund
	touch $@

$(WEBUI)/openapi.json: $(OPENAPI_SRC) | $(STAMP)
	$(VENV_PY) $(WEBUI)/dump_openapi.py $@
	touch $@

$(WEBUI)/src/api/schema.d.ts: $(WEBUI)/openapi.json | $(WEBUI_DEPS)
	cd $(WEBUI) && npm run --silent gen:api

$(WEBUI_STAMP): $(WEBUI_SRC) $(WEBUI)/src/api/schema.d.ts $(WEBUI_DEPS)
	cd $(WEBUI) && npm run build
	touch $@

webui: node-deps
	$(MAKE) --no-print-directory $(WEBUI_STAMP)

test: venv test-deps webui
	$(VENV_PY) -m pytest -q -ra $(PYTEST_ARGS)

test-fast: venv test-deps webui
	$(VENV_PY) -m pytest -q -ra -m "not slow" $(PYTEST_ARGS)

demo: venv docker webui
	bash $(BOOTSTRAP)/demo.sh

clean:
	rm -rf .pytest_cache .hypothesis build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(WEBUI)/node_modules $(WEBUI)/dist
