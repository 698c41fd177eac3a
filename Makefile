# Two commands matter: `make run` and `make test`. Both install whatever is missing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STATE := .state
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := mariadb-server mariadb-client libmariadbd-dev libssl-dev libgmp-dev gcc make age

.PHONY: run test bench udf onion-core deps sysdeps venv lint clean

run: deps
	$(VENV)/bin/cryptdb serve --dev

test: deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q tests

bench: deps
	$(PY) -m benchmarks

lint: venv
	$(VENV)/bin/ruff check .

deps: sysdeps venv udf onion-core

# Debian packages: the MariaDB server the dev backend and the tests run, headers and
# libraries the UDFs build against, and the stock `age` tool the backup tests decrypt with.
sysdeps: $(STATE)/sysdeps.stamp
$(STATE)/sysdeps.stamp:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@umask 077; mkdir -p $(STATE); touch $@

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

udf: sysdeps
	$(MAKE) -C udf

# The compiled OPE core (same ciphertexts as the Python reference, ~30x faster).
onion-core: sysdeps
	$(MAKE) -C onion

clean:
	rm -rf $(VENV) udf/build onion/build *.egg-info
