# The README's commands. Each target installs what it needs into .venv first.
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTHON  ?= python3
# The home every target works in (lake, MLflow store, Prefect home): FACTORY_HOME when set.
override FACTORY_HOME := $(abspath $(or $(FACTORY_HOME),$(CURDIR)))
export FACTORY_HOME
export PREFECT_HOME := $(FACTORY_HOME)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
PREFECT_PORT ?= 4200
MLFLOW_PORT  ?= 5000
# `make ui` on PostgreSQL (README "Shared servers on PostgreSQL"): PREFECT_DATABASE_URL and
# MLFLOW_DATABASE_URL, postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE, each created if missing.
# Two databases: Prefect and MLflow both keep their schema version in a table alembic_version.
# Unset, each server keeps its sqlite file in FACTORY_HOME.
PREFECT_DATABASE_URL ?=
MLFLOW_DATABASE_URL  ?=
MLFLOW_ARTIFACT_ROOT ?= $(FACTORY_HOME)/mlflow/artifacts
# The address both servers listen on, the host name browsers reach them at, and where `make ui`
# keeps their logs and process ids (`make ui-stop` reads them there).
UI_HOST        ?= 127.0.0.1
UI_PUBLIC_HOST ?= $(UI_HOST)
UI_STATE       ?= .ui

.PHONY: install demo test lint ui ui-stop serve bench clean-data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0   # the local CPU wheel; a looser pin pulls CUDA
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/factory ingest --source demo --source bokeh
	$(BIN)/factory run --profile demo
	$(BIN)/factory select --profile demo
	$(BIN)/factory leaderboard --profile demo
	$(BIN)/factory backtest --include-staging
	$(BIN)/factory portfolio --include-staging
	@echo ""
	@echo "Browse experiments and the registry:  make ui   then open"
	@echo "  MLflow UI:  http://127.0.0.1:$(MLFLOW_PORT)   Prefect UI:  http://127.0.0.1:$(PREFECT_PORT)"
	@echo "Register the deployments (factory on demand, snapshot every 5 min, selection every 24 h,"
	@echo "the portfolio after each selection, backtest on demand, lake maintenance every 7 days):"
	@echo "  make serve"

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest -q

# A URL as postgresql://, postgres:// or postgresql+DRIVER:// -> postgresql+$(1)://.
pg_driver = $(subst postgresql://,postgresql+$(1)://,$(subst postgres://,postgresql://,$(subst \
	postgresql+psycopg://,postgresql://,$(subst postgresql+asyncpg://,postgresql://,$(2)))))
# The database a URL names (for messages: no password).
pg_name = $(lastword $(subst /, ,$(firstword $(subst ?, ,$(1)))))
# The servers read their stores from the environment, so no password shows in `ps` or here.
ifneq ($(PREFECT_DATABASE_URL),)
ui: export PREFECT_SERVER_DATABASE_CONNECTION_URL = $(call pg_driver,asyncpg,$(PREFECT_DATABASE_URL))
endif
ifneq ($(MLFLOW_DATABASE_URL),)
ui: export MLFLOW_BACKEND_STORE_URI = $(call pg_driver,psycopg,$(MLFLOW_DATABASE_URL))
endif
# Refuses one database for both servers; creates a missing database (needs CREATEDB).
define UI_DATABASES_PY
import os, sys
from urllib.parse import urlsplit
import psycopg
from psycopg import sql
keys = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "MLFLOW_BACKEND_STORE_URI")
urls = ["postgresql://" + os.environ[k].split("://", 1)[1] for k in keys
        if os.environ.get(k, "").startswith("postgresql")]
where = [(p.hostname, p.port or 5432, p.path.lstrip("/")) for p in map(urlsplit, urls)]
if len(where) == 2 and where[0] == where[1]:
    sys.exit("make ui: PREFECT_DATABASE_URL and MLFLOW_DATABASE_URL name the same database; "
             "give each its own (both keep their schema version in a table alembic_version)")
for url, (_, _, name) in zip(urls, where):
    try:
        psycopg.connect(url, connect_timeout=10).close()
        continue
    except psycopg.OperationalError as err:
        if f'database "{name}" does not exist' not in str(err):
            sys.exit(f"make ui: cannot connect to database {name}: {err}")
    try:
        admin = urlsplit(url)._replace(path="/postgres").geturl()
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as err:
        sys.exit(f"make ui: database {name} does not exist and could not be created: {err}")
    print(f"make ui: created database {name}")
endef
ui: export UI_DATABASES_PY := $(UI_DATABASES_PY)

# PREFECT_UI_API_URL: without it the UI of a server on another port still calls port 4200.
ui: install
	@mkdir -p $(UI_STATE) $(if $(findstring ://,$(MLFLOW_ARTIFACT_ROOT)),,$(MLFLOW_ARTIFACT_ROOT))
	$(if $(PREFECT_DATABASE_URL)$(MLFLOW_DATABASE_URL),@$(BIN)/python -c "$$UI_DATABASES_PY")
	PREFECT_UI_API_URL=http://$(UI_PUBLIC_HOST):$(PREFECT_PORT)/api \
		setsid $(BIN)/prefect server start --host $(UI_HOST) --port $(PREFECT_PORT) \
		> $(UI_STATE)/prefect.log 2>&1 & echo $$! > $(UI_STATE)/prefect.pid
	setsid $(BIN)/mlflow server --host $(UI_HOST) --port $(MLFLOW_PORT) \
		$(if $(MLFLOW_DATABASE_URL),,--backend-store-uri sqlite:///$(FACTORY_HOME)/mlflow/mlflow.db) \
		--default-artifact-root $(MLFLOW_ARTIFACT_ROOT) \
		> $(UI_STATE)/mlflow.log 2>&1 & echo $$! > $(UI_STATE)/mlflow.pid
	@echo "Prefect UI http://$(UI_PUBLIC_HOST):$(PREFECT_PORT)  MLflow UI http://$(UI_PUBLIC_HOST):$(MLFLOW_PORT)"
	@echo "Prefect store: $(if $(PREFECT_DATABASE_URL),PostgreSQL database $(call pg_name,$(PREFECT_DATABASE_URL)),sqlite in $(PREFECT_HOME))"
	@echo "MLflow store: $(if $(MLFLOW_DATABASE_URL),PostgreSQL database $(call pg_name,$(MLFLOW_DATABASE_URL)),sqlite in $(FACTORY_HOME)/mlflow); artifacts in $(MLFLOW_ARTIFACT_ROOT)"
	@echo "serving FACTORY_HOME=$(FACTORY_HOME)"
	@echo "logs in $(UI_STATE)/; stop both with: make ui-stop"

# Each server's whole process group: SIGTERM, up to 60 s to exit (MLflow's job consumers are
# slow to), then SIGKILL; so the ports are free when it returns.
ui-stop:
	-@groups=; for f in $(UI_STATE)/prefect.pid $(UI_STATE)/mlflow.pid; do \
		[ -f $$f ] && groups="$$groups $$(cat $$f)" && rm -f $$f; done; \
	for g in $$groups; do kill -TERM -$$g 2>/dev/null; done; \
	for g in $$groups; do for i in $$(seq 120); do kill -0 -$$g 2>/dev/null || break; \
		sleep 0.5; done; kill -KILL -$$g 2>/dev/null; done; true

serve: install
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/factory serve --profile demo

bench: install
	$(BIN)/python bench/factory_wall_time.py
	$(BIN)/python bench/ingest_wall_time.py
	$(BIN)/python bench/rating.py
	$(BIN)/python bench/zoo.py
	$(BIN)/python bench/features.py
	$(BIN)/python bench/portfolio_solve.py
	$(BIN)/python bench/event_engine.py

clean-data:
	rm -rf data mlflow/mlflow.db mlflow/artifacts .prefect
