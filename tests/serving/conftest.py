"""A tiny registry with two versions of one model, shared by the serving tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import RUBRIC, evidence_row, write_csv

MODEL = "prescore-serve"


@dataclass(frozen=True)
class Registry:
    folder: Path
    tracking_uri: str


def register_versions(folder: Path, alphas: list[float]) -> Registry:
    """One TF-IDF version per alpha, on evidence whose text names its level; champion = 1."""
    from mlflow.tracking import MlflowClient

    from prescore.training.config import load_config
    from prescore.training.run import train
    from prescore.training.tracking import configure_tracking

    (folder / "rubrics").mkdir()
    (folder / "rubrics" / "wait-time.yaml").write_text(yaml.safe_dump(RUBRIC))
    rows = [evidence_row(n) for n in range(200)]
    for row in rows:
        row["text"] += f" Overall {row['final_level']}."
    write_csv(folder / "evidence.csv", rows)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        configure_tracking()
        for n, alpha in enumerate(alphas):
            config = folder / f"serve-{n}.yaml"
            scorer = {"kind": "tfidf", "params": {"min_df": 1, "alpha": alpha}}
            spec = {"name": "serve", "data": {"path": "evidence.csv"}, "scorer": scorer}
            config.write_text(yaml.safe_dump(spec))
            train(load_config(config))
        MlflowClient().set_registered_model_alias(MODEL, "champion", "1")
    return Registry(folder, uri)


@pytest.fixture(scope="package")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return register_versions(tmp_path_factory.mktemp("registry"), [1.0, 0.01])
