"""Where MLflow keeps runs and the registry: local SQLite unless MLFLOW_TRACKING_URI says else."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def configure_tracking() -> str:
    """Point MLflow at the configured store.

    The registry lives in the same store unless MLFLOW_REGISTRY_URI, which MLflow reads
    itself, names another.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri


def experiment_id(name: str) -> str:
    """The MLflow experiment of a config; a local store keeps artifacts under ./mlruns."""
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    location = None
    if (
        mlflow.get_tracking_uri().startswith("sqlite:///")
        and "MLFLOW_ARTIFACTS_DESTINATION" not in os.environ
    ):
        store = Path(mlflow.get_tracking_uri().removeprefix("sqlite:///")).parent
        location = (store / "mlruns").as_uri()
    return str(mlflow.create_experiment(name, artifact_location=location))
