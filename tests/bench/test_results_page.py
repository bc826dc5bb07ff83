"""eval/RESULTS.md is made, never written: the command regenerates it byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from bench.accuracy import FoldResult
from bench.results_page import current_results, results_page
from prescore.cli import app

ROOT = Path(__file__).resolve().parents[2]


def result(scorer: str, qwk: float, benchmark: str = "asap-aes") -> FoldResult:
    return FoldResult(
        benchmark=benchmark, scorer=scorer, fold=1, qwk={"c/a": qwk}, human_qwk={}, rmse={},
        target_error={}, auto_share={}, auto_error={}, test_items={"c/a": 10}, train_items=100,
        fit_seconds=1.0, predict_seconds=1.0, hardware="test",
    )  # fmt: skip


def write(path: Path, *results: FoldResult) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r.to_json() + "\n" for r in results))
    return path


def test_the_committed_page_is_what_the_command_writes(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "eval" / "results", tmp_path / "eval" / "results")
    files = sorted((tmp_path / "eval" / "results").glob("*/*.jsonl"))
    run = CliRunner().invoke(app, ["bench", "report", *map(str, files)])
    assert run.exit_code == 0, run.output
    written = (tmp_path / "eval" / "RESULTS.md").read_bytes()
    assert written == (ROOT / "eval" / "RESULTS.md").read_bytes(), (
        "eval/RESULTS.md is stale: run `prescore bench report eval/results/*/*.jsonl`"
    )


def test_a_later_folder_replaces_a_scorer_s_rows_and_an_older_row_carries_its_date(
    tmp_path: Path,
) -> None:
    old = write(tmp_path / "2026-01-01-first" / "asap-aes.jsonl", result("tfidf", 0.5),
                result("mpnet", 0.7))  # fmt: skip
    new = write(tmp_path / "2026-02-01-second" / "asap-aes.jsonl", result("tfidf", 0.6))
    variants = write(tmp_path / "2026-02-01-third" / "asap-aes-split.jsonl", result("tfidf", 0.4))
    shown, sources = current_results([variants, new, old])  # any order given
    by_label = {(r.benchmark, r.scorer): r.qwk["c/a"] for r in shown}
    assert by_label == {
        ("asap-aes", "tfidf"): 0.6,
        ("asap-aes", "mpnet (2026-01-01)"): 0.7,
        ("asap-aes: third (2026-02-01)", "tfidf (split)"): 0.4,
    }
    assert sources["asap-aes"] == ["2026-01-01-first/asap-aes.jsonl",
                                   "2026-02-01-second/asap-aes.jsonl"]  # fmt: skip
    page = results_page([old, new, variants])
    assert page.index("## asap-aes\n") < page.index("## asap-aes: third (2026-02-01)\n")
