"""The quick-start's example requests: a held-out submission of each route, found by the code
the service runs, never by loosening a gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from prescore.eval.routing import Route
from tests.conftest import RUBRIC, evidence_row, write_csv

MODEL = "prescore-demo"


def test_the_demo_finds_one_submission_decided_alone_and_one_for_a_reviewer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prescore.data.load import load_evidence
    from prescore.demo import pick_demo_requests
    from prescore.serving.schemas import EvidenceToScore
    from prescore.serving.scoring import ScoringModel
    from prescore.training.config import load_config
    from prescore.training.run import train

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "rubrics").mkdir()
    (tmp_path / "rubrics" / "wait-time.yaml").write_text(yaml.safe_dump(RUBRIC))
    rows = [evidence_row(n) for n in range(1600)]
    words = {"0": "absent", "1": "emerging", "2": "steady", "3": "masterful"}
    for n, row in enumerate(rows):
        row["submission_id"] = row["educator_id"]
        if n // 2 % 5:
            level = words.get(row["final_level"], row["final_level"])
            row["text"] = f"Item {n}: I was {level}."
            continue
        # every fifth submission says nothing of its levels, half of them earned: unsure
        met = n // 2 % 10 == 0
        level = ("Proficient" if met else "Developing") if n % 2 == 0 else ("3" if met else "1")
        row.update(text=f"Item {n}: no idea.", final_level=level, rater1_level=level)
    single_rater = [c for c in rows[0] if not c.startswith("rater2")]  # fallback targets
    write_csv(tmp_path / "evidence.csv", rows, single_rater)
    spec = {
        "name": "demo",
        "registered_model": MODEL,
        "data": {"path": "evidence.csv"},
        "scorer": {"kind": "tfidf", "params": {"min_df": 1, "alpha": 0.01}},
        "evaluation": {"protocol": "crossfit"},
    }
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(spec))
    config = load_config(tmp_path / "demo.yaml")
    result = train(config)
    assert result is not None
    test = load_evidence(config.data).splits["test"]

    found = pick_demo_requests(MODEL, result.version, test, tmp_path / "demo")
    assert set(found) == {Route.auto, Route.human}
    scoring = ScoringModel.from_registry(MODEL, result.version)
    for route, example in found.items():
        assert oct(example.body.stat().st_mode & 0o777) == "0o600"
        items = [EvidenceToScore(**i) for i in json.loads(example.body.read_text())["items"]]
        _, (again,) = scoring.score_submissions(items)
        assert again.route is route and again == example.decision  # the request shows it
