"""The lake maintenance flow, served weekly: z-order, compact and vacuum the lake's Delta
tables (``factory.data.maintenance``), under the FACTORY_HOME writer lock.

Runs are named ``lake-maintenance-<YYYYmmdd-HHMM>`` (UTC) and log one line per table at INFO.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger
from prefect.deployments.runner import RunnerDeployment

from factory.data.maintenance import maintain_home
from factory.paths import configure_environment
from tasks.results import JSON_RESULTS

MAINTENANCE_INTERVAL = timedelta(days=7)


def maintenance_run_name() -> str:
    """``lake-maintenance-<YYYYmmdd-HHMM>``, in UTC."""
    return f"lake-maintenance-{datetime.now(UTC):%Y%m%d-%H%M}"


@flow(name="lake-maintenance", flow_run_name=maintenance_run_name, persist_result=False,
      result_serializer=JSON_RESULTS)
def lake_maintenance(retention_days: float | None = None) -> dict:
    """Z-order, compact and vacuum; ``retention_days`` as ``factory lake maintain``'s."""
    paths = configure_environment()
    retention = None if retention_days is None else timedelta(days=retention_days)
    summary = maintain_home(paths, retention)
    log = get_run_logger()
    for line in summary.lines():
        log.info("%s", line)
    return summary.to_dict()


def maintenance_deployment(tags: list[str] | None = None) -> RunnerDeployment:
    """The ``lake-maintenance-weekly`` deployment: `lake_maintenance` every 7 days."""
    return lake_maintenance.to_deployment(name="lake-maintenance-weekly",
                                          interval=MAINTENANCE_INTERVAL, tags=tags)
