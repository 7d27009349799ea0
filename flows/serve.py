"""Deployments: the factory flow on demand (trigger it from the Prefect UI) and the selection
flow every 24 hours. ``factory serve`` runs them against the server started by ``make ui``."""

from __future__ import annotations

from datetime import timedelta

from prefect import serve

from flows.factory_flow import factory_flow
from flows.selection import selection_flow

SELECTION_INTERVAL = timedelta(hours=24)


def deployments(profile: str = "demo") -> list:
    """The two deployments ``factory serve`` registers."""
    return [
        factory_flow.to_deployment(name="factory", parameters={"profile": profile},
                                   tags=["model-factory"]),
        selection_flow.to_deployment(name="selection-daily", parameters={"profile": profile},
                                     interval=SELECTION_INTERVAL, tags=["model-factory"]),
    ]


def serve_deployments(profile: str = "demo") -> None:
    """Register both deployments and serve them until interrupted."""
    serve(*deployments(profile))
