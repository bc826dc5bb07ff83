"""A tiny registry with two versions of one model, shared by the serving tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
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


def write_named_evidence(folder: Path, count: int, mentions: int = 1) -> None:
    """The rubric and `count` evidence rows whose text names its level `mentions` times, so a
    tiny model learns it quickly."""
    (folder / "rubrics").mkdir()
    (folder / "rubrics" / "wait-time.yaml").write_text(yaml.safe_dump(RUBRIC))
    rows = [evidence_row(n) for n in range(count)]
    for row in rows:
        row["text"] += " Overall" + f" {row['final_level']}" * mentions + "."
    write_csv(folder / "evidence.csv", rows)


def register_versions(folder: Path, alphas: list[float]) -> Registry:
    """One TF-IDF version per alpha, on evidence whose text names its level; champion = 1."""
    from mlflow.tracking import MlflowClient

    from prescore.models.registry import configure_tracking
    from prescore.training.config import load_config
    from prescore.training.run import train

    write_named_evidence(folder, 200)
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


def start_champion(
    registry: Registry, folder: Path, settings: dict[str, str], log: Path, append: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    """`bentoml serve` on a free loopback port over the registry's champion, ready to answer;
    (process, url). A service that does not start is stopped and fails the test."""
    from prescore.serving.launch import free_port, start_service, stop, wait_until_ready

    port = free_port()
    environment = {
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "BENTOML_HOME": str(folder / "bentoml"),
        "HF_HUB_OFFLINE": "1",
        "PRESCORE_MODEL": MODEL,
        "PRESCORE_MODEL_ALIAS": "champion",
        **settings,
    }
    with log.open("ab" if append else "wb") as sink:
        process = start_service(environment, port=port, output=sink, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    if not wait_until_ready(process, url, timeout=120):
        stop(process)
        pytest.fail("service did not start:\n" + log.read_text())
    return process, url


@contextmanager
def running_service(
    registry: Registry, folder: Path, settings: dict[str, str]
) -> Iterator[tuple[str, Path]]:
    """`bentoml serve` on a free loopback port over the registry's champion; (url, log)."""
    from prescore.serving.launch import stop

    log = folder / "service.log"
    process, url = start_champion(registry, folder, settings, log)
    try:
        yield url, log
    finally:
        stop(process)
