# One pinned stack in one venv; Delta's jars resolved once into .cache/jars.
# Every target is idempotent: a second run reuses the venv and the jar cache offline.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JARS := .cache/jars
DELTA_VERSION := 4.0.1
DELTA_JARS := $(JARS)/delta-spark_2.13-$(DELTA_VERSION).jar $(JARS)/delta-storage-$(DELTA_VERSION).jar
LANDING ?= data/landing
LAKE ?= data/lake
SF ?= 0.01
DAYS ?= 3
SEED ?= 42
PYTEST_ARGS ?=

.PHONY: setup demo test lint typecheck clean-data help

help:
	@echo "make setup   - venv, project install, Delta jars into $(JARS), spark-submit defaults"
	@echo "make demo    - generate a chaos TPC-H sample and run the pipeline over every drop"
	@echo "make test    - set-up, then the whole test suite (pytest)"
	@echo "make lint    - ruff and mypy"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[airflow,dev]'
	$(PY) -m pip check
	touch $@

$(JARS)/delta-spark_2.13-$(DELTA_VERSION).jar:
	mkdir -p $(JARS)
	mvn -q dependency:copy -Dartifact=io.delta:delta-spark_2.13:$(DELTA_VERSION) -DoutputDirectory=$(JARS)

$(JARS)/delta-storage-$(DELTA_VERSION).jar:
	mkdir -p $(JARS)
	mvn -q dependency:copy -Dartifact=io.delta:delta-storage:$(DELTA_VERSION) -DoutputDirectory=$(JARS)

$(VENV)/.spark-conf: $(VENV)/.installed $(DELTA_JARS) jobs/settings.py jobs/spark.py
	$(PY) -m jobs.spark
	touch $@

setup: $(VENV)/.installed $(DELTA_JARS) $(VENV)/.spark-conf

demo: setup
	$(PY) -m jobs.datagen --sf $(SF) --days $(DAYS) --seed $(SEED) --chaos --landing $(LANDING)
	$(PY) -m jobs.demo --landing $(LANDING) --lake $(LAKE)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean-data:
	rm -rf data
