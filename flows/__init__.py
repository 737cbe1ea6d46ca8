"""Prefect flows: orchestration over the DVC stages, no ML logic."""
