"""Benchmark protocol on a small fixture: folds, fold results and the tables made from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.accuracy import (
    FoldResult,
    embeddings_baseline,
    folds,
    run_benchmark,
    scorer_label,
)
from bench.report import markdown, read_results
from prescore.data.load import load_evidence
from prescore.training.config import ScorerSpec, load_config
from tests.conftest import COLUMNS, evidence_row, write_csv

QUICKSTART_ELL = Path(__file__).parents[2] / "experiments" / "quickstart-tfidf.yaml"


@pytest.fixture
def folded_config(tmp_path: Path, rubric_dir: Path) -> Path:
    rows = [evidence_row(n, fold=str(1 + (n // 6) % 3)) for n in range(180)]
    for row in rows:
        row["text"] += f" Overall r{row['final_level']}."  # one token per level
    write_csv(tmp_path / "evidence.csv", rows, [*COLUMNS, "fold"])
    config = tmp_path / "bench.yaml"
    spec = {"name": "bench", "data": {"path": "evidence.csv"}, "scorer": {"kind": "tfidf"}}
    config.write_text(yaml.safe_dump(spec))
    return config


def test_every_item_is_tested_once_and_never_trained_on_in_its_fold(folded_config: Path) -> None:
    config = load_config(folded_config)
    evidence = load_evidence(config.data)
    total = sum(len(split) for split in evidence.splits.values())
    runs = folds(config, evidence)
    assert [fold for fold, _ in runs] == [1, 2, 3]
    tested = [i for _, fold in runs for i in fold.splits["test"]["id"]]
    assert len(tested) == len(set(tested)) == total
    for _, fold in runs:
        test = set(fold.splits["test"]["educator_id"])
        assert not test & set(fold.splits["train"]["educator_id"])
        assert not test & set(fold.splits["calibration"]["educator_id"])
        assert len(fold.splits["calibration"]) > 0


def test_hashed_folds_each_keep_a_calibration_split() -> None:
    """ELL has no published folds: five come from a hash of the essay, and the calibration
    educators must not all fall into one of them."""
    config = load_config(QUICKSTART_ELL)
    runs = folds(config, load_evidence(config.data))
    assert [fold for fold, _ in runs] == [1, 2, 3, 4, 5]
    for _, fold in runs:
        held_out = len(fold.splits["calibration"])
        share = held_out / (held_out + len(fold.splits["train"]))
        assert 0.08 < share < 0.22, share


def test_fold_results_make_tables_and_survive_a_round_trip(
    folded_config: Path, tmp_path: Path
) -> None:
    config = load_config(folded_config)
    results_file = tmp_path / "results.jsonl"
    sharp = ScorerSpec(kind="tfidf", params={"min_df": 1, "alpha": 0.01})
    results = run_benchmark(config, [sharp], only_folds=[1, 3], results=results_file)
    assert [r.fold for r in results] == [1, 3]
    assert [r.to_json() for r in read_results([results_file])] == [r.to_json() for r in results]
    for result in results:
        assert set(result.qwk) == {"wait-time/planning", "wait-time/reflection"}
        assert all(q > 0.5 for q in result.qwk.values())  # the text names its level
        assert result.human_qwk["wait-time/planning"] == pytest.approx(1.0)  # raters agree
        assert result.fit_seconds > 0 and result.predict_seconds > 0
    tables = markdown(results)
    assert "## bench" in tables and "Folds: 1, 3." in tables
    planning = next(line for line in tables.splitlines() if line.startswith("| wait-time/planning"))
    expected = np.mean([r.qwk["wait-time/planning"] for r in results])
    assert f"{expected:.3f}" in planning
    # recipes are chosen on the calibration splits, which every fold records apart from test
    assert all(set(r.calibration_qwk) == set(r.qwk) for r in results)
    on_calibration = np.mean([np.mean(list(r.calibration_qwk.values())) for r in results])
    assert f"| tfidf | {on_calibration:.3f} | 2 |" in tables


def test_the_ensemble_pools_the_folds_fitted_scorers(folded_config: Path) -> None:
    config = load_config(folded_config)
    ridge = ScorerSpec(kind="tfidf", params={"min_df": 1, "alpha": 0.01})
    logistic = ScorerSpec(kind="tfidf", params={"min_df": 1, "head": "logistic"})
    results = run_benchmark(config, [ridge, logistic], only_folds=[2], ensemble=True)
    assert [r.scorer for r in results] == ["tfidf", "tfidf", "ensemble"]
    members, pooled = results[:2], results[2]
    assert pooled.fit_seconds >= sum(r.fit_seconds for r in members)
    assert pooled.test_items == members[0].test_items
    assert all(q > 0.5 for q in pooled.qwk.values())
    alone = run_benchmark(config, [ridge], only_folds=[2], ensemble=True)
    assert [r.scorer for r in alone] == ["tfidf"]  # nothing to pool


def test_the_mean_row_averages_criteria_and_triage_weights_items() -> None:
    def result(fold: int, qwk: float, share: float) -> FoldResult:
        return FoldResult(
            benchmark="b", scorer="tfidf", fold=fold,
            qwk={"c/a": qwk, "c/b": qwk + 0.2}, human_qwk={}, rmse={},
            target_error={"c/a": 0.1, "c/b": 0.1}, auto_share={"c/a": share, "c/b": 0.0},
            auto_error={"c/a": 0.05, "c/b": float("nan")}, test_items={"c/a": 100, "c/b": 100},
            train_items=1000, fit_seconds=2.0, predict_seconds=1.0, hardware="test",
        )  # fmt: skip

    tables = markdown([result(1, 0.5, 0.5), result(2, 0.7, 0.1)])
    assert "| mean | **0.700** |" in tables  # (0.6 + 0.8) / 2
    assert "| tfidf | 400 | 0.150 | 0.050 | 0.100 | 2 | 0 |" in tables  # 60 of 400 items auto
    assert "| tfidf | test | 2.0 | 200 |" in tables


def test_the_bench_command_logs_its_tables_and_headline_metrics_to_mlflow(
    folded_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from prescore.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    results = tmp_path / "results.jsonl"
    arguments = ["bench", "accuracy", "--config", str(folded_config), "--quick", "--no-embeddings"]
    outcome = CliRunner().invoke(app, [*arguments, "--results", str(results), "--folds", "2"])
    assert outcome.exit_code == 0, outcome.output
    assert "Logged to MLflow" in outcome.output
    (run,) = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("bench-bench").experiment_id]
    )
    by_scorer = {r.scorer: r for r in read_results([results])}
    assert list(by_scorer) == ["tfidf", "tfidf-length", "essay", "ensemble"]
    for scorer, result in by_scorer.items():
        expected = np.mean(list(result.qwk.values()))
        assert run.data.metrics[f"{scorer}.qwk_mean"] == pytest.approx(expected)
    assert run.data.metrics["human_human.qwk_mean"] == pytest.approx(1.0)
    assert run.data.tags["folds"] == "2"
    logged = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "bench")}
    assert logged == {"bench/bench.md", "bench/results.jsonl"}

    untracked = CliRunner().invoke(app, ["bench", "report", str(results), "--no-track"])
    assert untracked.exit_code == 0 and "Logged to MLflow" not in untracked.output


def test_decisions_are_tabled_and_the_headline_prints_as_json(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from prescore.cli import app

    def result(fold: int, auto: int, false_awards: int) -> FoldResult:
        return FoldResult(
            benchmark="feedback-prize-ell", scorer="tfidf", fold=fold,
            qwk={"c/a": 0.6}, human_qwk={}, rmse={"c/a": 0.5},
            target_error={"c/a": 0.1}, auto_share={"c/a": 0.25}, auto_error={"c/a": 0.04},
            test_items={"c/a": 100}, train_items=1000, fit_seconds=2.0, predict_seconds=1.0,
            hardware="test", decision_submissions={"c": 50}, decision_auto={"c": auto},
            decision_false_awards={"c": false_awards}, decision_false_not_yet={"c": 1},
            decision_target={"c": 0.1},
        )  # fmt: skip

    runs = [result(1, 20, 1), result(2, 10, 3)]
    # 30 of 100 decided alone; 6 of them wrong; fold 2 is over its target (4 of 10)
    assert "| tfidf | 100 | 0.300 | 0.200 | 4 | 2 | 0.100 | 2 | 1 |" in markdown(runs)
    results = tmp_path / "results.jsonl"
    results.write_text("".join(r.to_json() + "\n" for r in runs))
    printed = CliRunner().invoke(app, ["bench", "report", str(results), "--json"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == {
        "feedback-prize-ell": {
            "tfidf": {
                "qwk_mean": 0.6,
                "mcrmse": 0.5,
                "item_auto_share": 0.25,
                "item_error": 0.04,
                "decision_auto_share": 0.3,
                "decision_error": 0.2,
                "decision_target": 0.1,
                "decision_credential_folds": 2.0,
                "decision_folds_over_target": 1.0,
            }
        }
    }


def test_an_embeddings_baseline_on_another_encoder_is_labelled_by_it(
    folded_config: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    config = load_config(folded_config)
    baseline = embeddings_baseline(tmp_path / "cache", str(tiny_encoder))
    (result,) = run_benchmark(config, [baseline], only_folds=[2], ensemble=False)
    assert result.scorer == f"embeddings-{tiny_encoder.name}"  # never mixed with MiniLM's row


def test_fine_tuning_recipes_are_labelled_so_their_rows_stay_apart() -> None:
    from prescore.models.transformer import TransformerScorer

    assert scorer_label(TransformerScorer()) == "transformer"
    recipe = TransformerScorer(layer_lr_decay=0.9, ranking_weight=0.5)
    assert scorer_label(recipe) == "transformer-llrd0.9-rank0.5"


def test_an_essay_booster_without_words_or_blocks_is_labelled_apart() -> None:
    from prescore.models.essay import EssayScorer

    assert scorer_label(EssayScorer()) == "essay"
    plain = EssayScorer(embeddings="bundled", stack_words=False, stack_blocks=False)
    assert scorer_label(plain) == "essay-minilm-words0-blocks0"


def test_a_missing_mpnet_extra_stops_the_bench_before_any_fold(
    folded_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata

    from typer.testing import CliRunner

    from prescore.cli import app

    def not_installed(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    results = tmp_path / "results.jsonl"
    arguments = ["bench", "accuracy", "--config", str(folded_config), "--quick"]
    outcome = CliRunner().invoke(
        app, [*arguments, "--base-model", "mpnet", "--results", str(results)]
    )
    assert outcome.exit_code == 1
    assert "prescore[mpnet]" in outcome.output and not results.exists()


def test_a_candidate_recipe_runs_from_the_config_with_params_over_it(
    folded_config: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from prescore.cli import app

    spec = ScorerSpec(kind="transformer", params={"max_length": 64, "layer_lr_decay": 0.8})
    recipe = spec.with_params(["ranking_weight=0.5", "layer_lr_decay=0.9"])
    assert recipe.params == {"max_length": 64, "layer_lr_decay": 0.9, "ranking_weight": 0.5}
    assert spec.params["layer_lr_decay"] == 0.8  # the config's own spec is left as it was
    with pytest.raises(ValueError, match="--param needs NAME=VALUE"):
        spec.with_params(["ranking_weight"])
    with pytest.raises(ValueError, match="ranking_weight >= 0"):
        spec.with_params(["ranking_weight=-1"])

    results = tmp_path / "results.jsonl"
    arguments = ["bench", "accuracy", "--config", str(folded_config), "--no-track"]
    outcome = CliRunner().invoke(
        app, [*arguments, "--param", "ranking_wieght=1", "--results", str(results)]
    )
    assert outcome.exit_code == 1
    assert "unknown parameter(s) ['ranking_wieght']" in outcome.output
    assert not results.exists()  # refused before any fold ran
