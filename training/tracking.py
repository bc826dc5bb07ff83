"""The MLflow experiment a run or benchmark logs to; the store itself is models/registry.py's."""

from __future__ import annotations

import mlflow

from prescore.models.registry import local_artifact_location


def experiment_id(name: str) -> str:
    """The MLflow experiment of a config; a local store keeps its artifacts under mlruns/
    beside the store, wherever the command runs."""
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    folder = local_artifact_location(mlflow.get_tracking_uri())
    location = folder.resolve().as_uri() if folder is not None else None
    return str(mlflow.create_experiment(name, artifact_location=location))
