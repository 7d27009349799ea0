"""How Prefect persists results and failures here: as JSON, never as a pickle (rule 11)."""

from __future__ import annotations

from prefect.serializers import JSONSerializer

JSON_RESULTS = JSONSerializer(object_decoder=None)
"""Persisted results as JSON. Writing keeps Prefect's encoder, so the exception of a failed
run is stored as its type name and message (Prefect's default would pickle it); reading has
no object hook, so a ``__class__`` named in a file stays a plain dict and nothing is imported."""
