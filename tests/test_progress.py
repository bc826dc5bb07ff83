"""Long steps report progress in a redirected log too, as plain lines, not only as a bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from prescore.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


class TrainerState:
    max_steps = 10
    global_step = 0
    epoch = 1.0
    is_world_process_zero = True


def test_fine_tuning_progress_is_plain_lines_when_output_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from prescore.training.fit import RichProgress

    callback, state = RichProgress(), TrainerState()
    callback.on_train_begin(None, state, None)
    for step in range(1, 11):
        state.global_step = step
        callback.on_step_end(None, state, None)
    callback.on_log(None, state, None, logs={"loss": 0.5})
    callback.on_train_end(None, state, None)
    out = capsys.readouterr().out
    assert "fine-tuning: step 3/10 (30%)" in out
    assert "fine-tuning: step 10/10 (100%)" in out
    assert "epoch 1: train loss 0.5000" in out


def test_embedding_progress_is_plain_lines_when_output_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prescore.models.embeddings import EmbeddingScorer

    class Encoder:
        def encode(self, part: list[str], **_: Any) -> np.ndarray:
            return np.zeros((len(part), 4))

    scorer = EmbeddingScorer(batch_size=1)
    monkeypatch.setattr(scorer, "_encoder", Encoder)
    vectors = scorer.encode_windows(["a window"] * 100)
    assert vectors.shape == (100, 4)
    out = capsys.readouterr().out
    assert "embedding evidence windows: 64/100 (64%)" in out
    assert "embedding evidence windows: 100/100 (100%)" in out


@pytest.mark.slow
def test_serve_and_evaluate_before_promote_name_the_promote_command(
    tmp_path: Path, good_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "x.yaml"
    config.write_text("name: x\ndata:\n  path: evidence.csv\nscorer: {kind: tfidf}\n")
    result = runner.invoke(app, ["train", "--config", str(config)], env=WIDE)
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["serve", "--model", "prescore-x"], env=WIDE)
    assert result.exit_code == 1
    assert "prescore-x has version(s) 1 but no 'champion'" in result.output
    assert "prescore promote --model prescore-x" in result.output
    result = runner.invoke(
        app, ["evaluate", "--model", "prescore-x@champion", "--config", str(config)], env=WIDE
    )
    assert result.exit_code == 1
    assert "prescore promote --model prescore-x" in result.output
