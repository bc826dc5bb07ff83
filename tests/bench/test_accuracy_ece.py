"""The bench's headline carries ECE where fold results recorded it (issue 32), and only there."""

from __future__ import annotations

from bench.accuracy import FoldResult
from bench.report import headline


def result(scorer: str, ece: dict[str, float]) -> FoldResult:
    return FoldResult(
        benchmark="asap-aes", scorer=scorer, fold=1, qwk={"c/a": 0.8, "c/b": 0.6},
        human_qwk={}, rmse={}, target_error={}, auto_share={}, auto_error={},
        test_items={"c/a": 10, "c/b": 10}, train_items=100, fit_seconds=1.0,
        predict_seconds=1.0, hardware="test", ece=ece,
    )  # fmt: skip


def test_the_headline_reports_mean_ece_over_criteria_where_recorded() -> None:
    figures = headline([result("essay", {"c/a": 0.02, "c/b": 0.04}), result("tfidf", {})])
    assert figures["asap-aes"]["essay"]["ece"] == 0.03
    assert "ece" not in figures["asap-aes"]["tfidf"]  # results from before ECE was recorded
    assert FoldResult.from_json(result("essay", {"c/a": 0.1}).to_json()).ece == {"c/a": 0.1}
