"""The registry stages the selection moves models between (shared by the pure selection and
the tracking code, which may not import each other's dependencies)."""

PRODUCTION, STAGING, ARCHIVED, NONE = "Production", "Staging", "Archived", "None"
EVALUATION_STAGES = (PRODUCTION, STAGING)
"""Stages whose versions the snapshot keeps scoring on new bars (evaluation mode)."""
