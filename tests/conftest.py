"""Test-wide settings: no Prefect analytics, and no log shipping to an API server that a test
harness has already stopped (it only prints connection errors at exit)."""

import os

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
