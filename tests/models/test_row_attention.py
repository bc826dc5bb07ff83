"""Row-wise attention for bf16 on CPU: SDPA's answer where padding follows the tokens, SDPA
itself for any other mask, and the attention a bf16 check ran on is the one that serves."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prescore.models.onnx_copies import BF16, CHECK_FILE, load_copy, make_copies, read_copies
from prescore.models.row_attention import (
    ROWS,
    SCORES_PER_BLOCK,
    SDPA,
    attend_by_rows,
    use_attention,
)
from prescore.models.scorer import load_scorer
from prescore.models.transformer import TransformerScorer
from tests.conftest import scoring_frame


def heads(rows: int, tokens: int, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(rows * tokens)
    return [torch.randn(rows, 4, tokens, 16, generator=generator, dtype=dtype) for _ in range(3)]


def right_padded(lengths: list[int], tokens: int) -> torch.Tensor:
    """SDPA's boolean mask, as transformers builds it for an encoder: (rows, 1, tokens, tokens),
    the same keys for every query."""
    keys = torch.arange(tokens)[None] < torch.tensor(lengths)[:, None]
    return keys[:, None, None, :].expand(len(lengths), 1, tokens, tokens)


def test_rows_give_sdpa_answer_where_padding_follows_the_tokens() -> None:
    q, k, v = heads(3, 150)  # more queries than a block, a short row, an unpadded one
    mask = right_padded([150, 90, 7], 150)
    expected = F.scaled_dot_product_attention(q, k, v, mask, scale=0.25)
    assert torch.allclose(
        attend_by_rows(q, k, v, mask, 0.25, SCORES_PER_BLOCK), expected, atol=1e-5
    )
    unmasked = F.scaled_dot_product_attention(q, k, v, scale=0.25)
    assert torch.allclose(attend_by_rows(q, k, v, None, 0.25, 64), unmasked, atol=1e-5)
    # blocks of 16 queries; and blocks sized so that a shorter row's fill the buffers most
    for scores_per_block in (64, 4 * 150 * 20 + 599):
        blocked = attend_by_rows(q, k, v, mask, 0.25, scores_per_block)
        assert torch.allclose(blocked, expected, atol=1e-5)


def test_any_other_mask_is_left_to_sdpa() -> None:
    q, k, v = heads(3, 40)
    left = right_padded([40, 30, 5], 40).flip(-1)  # padding before the tokens
    causal = torch.ones(40, 40, dtype=torch.bool).tril()[None, None].expand(3, 1, 40, 40)
    additive = torch.zeros(3, 1, 40, 40)
    for mask in (left, causal, additive):
        expected = F.scaled_dot_product_attention(q, k, v, mask, scale=0.25)
        assert torch.equal(attend_by_rows(q, k, v, mask, 0.25, SCORES_PER_BLOCK), expected)


def test_in_bf16_rows_are_as_close_to_fp32_as_flash_attention() -> None:
    q, k, v = heads(2, 120)
    mask = right_padded([120, 61], 120)
    exact = F.scaled_dot_product_attention(q, k, v, mask, scale=0.25)
    low = [t.bfloat16() for t in (q, k, v)]
    flash = (F.scaled_dot_product_attention(*low, mask, scale=0.25).float() - exact).abs().max()
    rows = (attend_by_rows(*low, mask, 0.25, SCORES_PER_BLOCK).float() - exact).abs().max()
    assert rows < 3 * flash  # both round to bf16; neither is near the other's scale of error


def test_bf16_scores_on_rows_eager_and_traced_alike(
    fitted: TransformerScorer, tmp_path: Path
) -> None:
    fitted.save(tmp_path)
    X, _ = scoring_frame(12, seed=5)
    X.loc[0, "text"] = "pause " * 120  # several windows: padded batches
    reference = fitted.predict_proba(X)
    eager, traced = (load_scorer(tmp_path) for _ in range(2))
    assert isinstance(eager, TransformerScorer) and isinstance(traced, TransformerScorer)
    eager.use_bf16()
    traced.use_graph().use_bf16()
    assert eager.attention_ == traced.attention_ == ROWS
    assert eager.model_.encoder.config._attn_implementation == ROWS
    assert traced.graph_ is not None
    assert np.allclose(traced.predict_proba(X), eager.predict_proba(X), atol=1e-6)
    assert np.allclose(eager.predict_proba(X), reference, atol=0.05)
    on_sdpa = load_scorer(tmp_path)
    assert isinstance(on_sdpa, TransformerScorer)
    assert on_sdpa.use_bf16(SDPA).attention_ == SDPA


def test_an_encoder_with_attention_of_its_own_keeps_it() -> None:
    class OwnAttention(nn.Module):
        config = type("Config", (), {"_attn_implementation": "eager"})()

    assert use_attention(OwnAttention(), ROWS) == "eager"


@pytest.mark.slow
def test_a_bf16_scorer_unpickled_in_a_fresh_process_scores(
    fitted: TransformerScorer, tmp_path: Path
) -> None:
    """The attention registry is per process: unpickling registers the rows attention."""
    fitted.save(tmp_path / "scorer")
    scorer = load_scorer(tmp_path / "scorer")
    assert isinstance(scorer, TransformerScorer)
    (tmp_path / "bf16.pkl").write_bytes(pickle.dumps(scorer.use_bf16()))
    X, _ = scoring_frame(4, seed=9)
    X.to_pickle(tmp_path / "X.pkl")
    code = (
        "import pickle, pandas as pd, sys; "
        f"s = pickle.loads(open({str(tmp_path / 'bf16.pkl')!r}, 'rb').read()); "
        f"print(s.attention_, s.predict_proba(pd.read_pickle({str(tmp_path / 'X.pkl')!r})).shape)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == ROWS


def test_the_bf16_check_records_its_attention_and_an_older_check_serves_sdpa(
    fitted: TransformerScorer, tmp_path: Path
) -> None:
    calibration, _ = scoring_frame(30, seed=1)
    folder = tmp_path / "onnx"
    copies = make_copies(fitted, folder, calibration, copies=(BF16,))
    assert copies.copies[BF16].attention == ROWS and copies.attention(BF16) == ROWS

    before = json.loads((folder / CHECK_FILE).read_text())  # as export-onnx wrote it before
    del before["copies"][BF16]["attention"]
    (folder / CHECK_FILE).write_text(json.dumps(before))
    older = read_copies(folder)
    assert older is not None and older.attention(BF16) == SDPA
    fitted.save(tmp_path / "scorer")
    scorer = load_scorer(tmp_path / "scorer")
    assert isinstance(scorer, TransformerScorer)
    assert load_copy(folder, BF16, scorer, older.attention(BF16)).attention_ == SDPA
