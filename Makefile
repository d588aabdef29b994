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
PORT ?= 8080
DS ?=
# The DAGs and the jobs read these; absolute, so Airflow's processes agree on them.
DEMO_ENV := LANDING_URI=$(abspath $(LANDING)) LAKE_URI=$(abspath $(LAKE))

.PHONY: setup demo test lint typecheck clean-data help airflow dag-test

help:
	@echo "make setup   - venv, project install, Delta jars into $(JARS), spark-submit defaults"
	@echo "make demo    - generate a chaos TPC-H sample, run tpch_daily through Airflow for every drop, print the summary"
	@echo "make airflow - local Airflow (API server + UI, scheduler, DAG processor, triggerer) on 127.0.0.1:$(PORT)"
	@echo "make dag-test DS=YYYY-MM-DD - run tpch_daily in-process for one date (airflow dags test)"
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
	$(DEMO_ENV) $(PY) tools/airflow_local.py demo; status=$$?; \
	$(DEMO_ENV) $(PY) -m jobs.demo && exit $$status

airflow: setup
	$(PY) tools/airflow_local.py serve --port $(PORT)

dag-test: setup
	@test -n "$(DS)" || { echo "usage: make dag-test DS=YYYY-MM-DD" >&2; exit 2; }
	$(PY) tools/airflow_local.py dag-test --ds $(DS)

test: setup
	$(PY) tools/run_tests.py $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean-data:
	rm -rf data
