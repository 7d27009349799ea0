"""Test-wide settings, applied before any test module imports Prefect or MLflow.

Every test runs against a throwaway FACTORY_HOME and PREFECT_HOME, so the suite never writes
into the project's own lake, registry or Prefect home. Prefect sends no analytics and ships no
logs to an API server that a test harness has already stopped (it would only print
connection errors at exit).
"""

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="factory-tests-")
os.environ["FACTORY_HOME"] = _HOME
os.environ["PREFECT_HOME"] = os.path.join(_HOME, ".prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
for inherited in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
    os.environ.pop(inherited, None)
