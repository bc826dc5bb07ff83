"""The encoder traced for serving: eager's sums on every shape, or eager itself."""

from __future__ import annotations

import copy
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from prescore.models.encoder_graph import example, trace_window_sums
from prescore.models.ensemble import EnsembleScorer
from prescore.models.scorer import load_scorer
from prescore.models.transformer import TORCH_BF16, TransformerScorer
from tests.conftest import scoring_frame


def frame_with_padding() -> object:
    """Texts of many lengths: a long one of several windows, so batches are padded."""
    X, _ = scoring_frame(12, seed=5)
    X.loc[0, "text"] = "pause " * 120
    X.loc[1, "text"] = "short"
    return X


def loaded(fitted: TransformerScorer, folder: Path) -> TransformerScorer:
    fitted.save(folder)
    scorer = load_scorer(folder)
    assert isinstance(scorer, TransformerScorer)
    return scorer


def test_the_traced_encoder_scores_as_eager_does_in_fp32_and_bf16(
    fitted: TransformerScorer, tmp_path: Path
) -> None:
    X = frame_with_padding()
    eager = loaded(fitted, tmp_path / "a")
    traced = loaded(fitted, tmp_path / "b").use_graph()
    assert eager.graph_ is None and traced.graph_ is not None
    assert np.allclose(traced.predict_proba(X), eager.predict_proba(X), atol=1e-6)

    copied = copy.deepcopy(traced)  # a copy scores eager: a graph does not pickle
    assert copied.graph_ is None and traced.graph_ is not None
    assert np.allclose(copied.predict_proba(X), eager.predict_proba(X), atol=1e-6)
    assert pickle.loads(pickle.dumps(traced)).graph_ is None

    # bf16 after the trace: traced again, with the casts bf16 makes
    fp32_graph = traced.graph_
    traced.use_bf16()
    eager.use_bf16()
    assert traced.runtime == TORCH_BF16 and traced.graph_ not in (None, fp32_graph)
    assert np.allclose(traced.predict_proba(X), eager.predict_proba(X), atol=1e-6)


class MaskSkipping(nn.Module):
    """Like an encoder that drops its attention mask where nothing is padded: a Python branch
    a trace freezes. Here the branch changes the answer, so the trace must not be used."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 4)

    def window_sums(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.embed(input_ids)
        if bool(attention_mask.all()):
            states = states * 2
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(dim=1), mask.sum(dim=1)


class Untraceable(nn.Module):
    def window_sums(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> object:
        return {"text": "not a tensor"}


def test_a_trace_that_differs_from_eager_or_fails_is_not_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "prescore.models"):
        assert trace_window_sums(MaskSkipping(), 50, 128, bf16=False) is None
        assert "differ from eager" in caplog.text
        assert trace_window_sums(Untraceable(), 50, 128, bf16=False) is None
        assert "did not trace" in caplog.text
    # the same model without the branch traces and is kept
    plain = MaskSkipping()
    plain.window_sums = lambda ids, mask: (  # type: ignore[method-assign]
        plain.embed(ids).sum(dim=1),
        mask.sum(dim=1, keepdim=True).float(),
    )
    assert trace_window_sums(plain, 50, 128, bf16=False) is not None


def test_the_trace_examples_are_padded_where_asked() -> None:
    ids, mask = example(3, 20, [20, 9, 15], vocab=50)
    assert ids.shape == mask.shape == (3, 20) and int(ids.min()) >= 1 and int(ids.max()) < 50
    assert mask.sum(dim=1).tolist() == [20, 9, 15]


def test_an_ensemble_serves_its_transformer_member_on_the_graph(
    fitted: TransformerScorer, tmp_path: Path
) -> None:
    ensemble = EnsembleScorer()
    ensemble.members_ = [loaded(fitted, tmp_path / "member")]
    assert ensemble.use_graph() is ensemble
    member = ensemble.members_[0]
    assert isinstance(member, TransformerScorer) and member.graph_ is not None


def test_the_trace_encodes_in_bf16_wherever_eager_does(
    fitted: TransformerScorer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eager torch-fp32 runs under bf16 autocast where training would use bf16 (a GPU with
    bf16); the trace must record the same, or it would serve other numbers than the check's."""
    monkeypatch.setattr(TransformerScorer, "_use_bf16", lambda self: True)
    X = frame_with_padding()
    eager = loaded(fitted, tmp_path / "a")
    traced = loaded(fitted, tmp_path / "b").use_graph()
    assert traced.graph_ is not None
    assert np.allclose(traced.predict_proba(X), eager.predict_proba(X), atol=1e-6)
