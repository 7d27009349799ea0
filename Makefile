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

.PHONY: install demo test lint ui ui-stop serve bench clean-data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0   # the local CPU wheel; a looser pin pulls CUDA
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/factory ingest --source demo
	$(BIN)/factory run --profile demo
	$(BIN)/factory select --profile demo
	$(BIN)/factory leaderboard --profile demo
	@echo ""
	@echo "Browse experiments and the registry:  make ui   then open"
	@echo "  MLflow UI:  http://127.0.0.1:$(MLFLOW_PORT)   Prefect UI:  http://127.0.0.1:$(PREFECT_PORT)"
	@echo "Register the deployments (factory on demand, snapshot every 5 min, selection every 24 h,"
	@echo "lake maintenance every 7 days):  make serve"

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest -q

# PREFECT_UI_API_URL: without it the UI of a server on another port still calls port 4200.
ui: install
	@mkdir -p .ui $(FACTORY_HOME)/mlflow/artifacts
	PREFECT_UI_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api \
		setsid $(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) \
		> .ui/prefect.log 2>&1 & echo $$! > .ui/prefect.pid
	setsid $(BIN)/mlflow server --host 127.0.0.1 --port $(MLFLOW_PORT) \
		--backend-store-uri sqlite:///$(FACTORY_HOME)/mlflow/mlflow.db \
		--default-artifact-root $(FACTORY_HOME)/mlflow/artifacts \
		> .ui/mlflow.log 2>&1 & echo $$! > .ui/mlflow.pid
	@echo "Prefect UI http://127.0.0.1:$(PREFECT_PORT)  MLflow UI http://127.0.0.1:$(MLFLOW_PORT)"
	@echo "serving FACTORY_HOME=$(FACTORY_HOME)"
	@echo "logs in .ui/; stop both with: make ui-stop"

ui-stop:
	-@for f in .ui/prefect.pid .ui/mlflow.pid; do \
		[ -f $$f ] && kill -- -$$(cat $$f) 2>/dev/null; rm -f $$f; done

serve: install
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/factory serve --profile demo

bench: install
	$(BIN)/python bench/demo_wall_time.py
	$(BIN)/python bench/ingest_wall_time.py
	$(BIN)/python bench/rating.py
	$(BIN)/python bench/zoo.py
	$(BIN)/python bench/features.py

clean-data:
	rm -rf data mlflow/mlflow.db mlflow/artifacts .prefect
