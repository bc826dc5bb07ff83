"""Attention for the bf16 runtime on CPU: each window's keys cut to its length, bf16 matrix
products, an fp32 softmax.

PyTorch's CPU flash attention runs bf16 no faster than fp32 where the CPU lacks AMX: 15.5
against 14.9 ms for 8 windows x 12 heads x 366 tokens x 32 dimensions (AVX512-BF16, 2 cores),
46% of a bf16 forward in the profiler. Plain matrix products run on the bf16 instructions:
8.2 ms for the same shape, and 1.7 against 3.5 ms for one window on one thread
(eval/RESULTS.md). Per window and per block of queries, so that the fp32 scores
(SCORES_PER_BLOCK, 2 MB) stay in cache: scores of a whole window (6.4 MB) made each call's
time depend on what the allocator had been asked before. Keys are cut to the window's tokens
instead of masked, which is exact where padding follows the tokens, as
`TransformerScorer.encode_windows` pads; any other mask is left to SDPA.

Its numbers are not flash attention's: the quick-start model's window sums moved by up to
0.6% (relative to the largest). So the bf16 runtime is checked at export on the attention it
serves with, and a check from before this attention existed serves with SDPA, as checked
(models/onnx_copies.py).
"""

from __future__ import annotations

from typing import Any, Final

import torch
import torch.nn.functional as F
from torch import nn

ROWS: Final = "prescore_rows"  # the name transformers' attention registry knows it by
SDPA: Final = "sdpa"  # transformers' default: torch's scaled_dot_product_attention
# fp32 scores per block of queries (2 MB): 12 heads x 128 queries x 366 keys ran fastest of
# 64, 128 and 256 queries on 2 cores; 256 (4.5 MB) ran 2.3-4.8x slower than 128 on two threads
SCORES_PER_BLOCK = 2**19


@torch.jit.script
def attend_by_rows(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float,
    scores_per_block: int,
) -> torch.Tensor:
    """softmax(q k^T * scaling) v over (batch, heads, tokens, dimensions), each row's keys
    cut to its length, as many queries at a time as make `scores_per_block` scores. Scripted,
    so that a trace of the model keeps its loops."""
    rows, queries, keys = query.shape[0], query.shape[2], key.shape[2]
    lengths = torch.full([rows], keys, dtype=torch.long)
    if mask is not None:
        attends = mask[:, 0, :1, :].reshape(rows, keys)  # the keys each row's first query sees
        lengths = attends.sum(-1)
        prefix = torch.arange(keys).unsqueeze(0) < lengths.unsqueeze(1)
        uniform = bool((mask[:, 0] == attends.unsqueeze(1)).all())
        if mask.dtype != torch.bool or not uniform or not torch.equal(prefix, attends):
            return F.scaled_dot_product_attention(query, key, value, mask, scale=scaling)
    out = torch.empty_like(query)
    for row in range(rows):
        length = int(lengths[row])
        row_keys = key[row, :, :length].transpose(-1, -2)
        row_values = value[row, :, :length]
        block = max(16, scores_per_block // max(1, query.shape[1] * length))
        for start in range(0, queries, block):
            scores = torch.matmul(query[row, :, start : start + block], row_keys).float()
            weights = torch.softmax(scores.mul_(scaling), dim=-1).to(query.dtype)
            out[row, :, start : start + block] = torch.matmul(weights, row_values)
    return out


def rows_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention interface: output (batch, tokens, heads, dimensions). A
    decoder's, a grouped-query or a training call goes to SDPA as transformers runs it."""
    scale = float(scaling if scaling is not None else query.shape[-1] ** -0.5)
    if getattr(module, "is_causal", False) or key.shape[1] != query.shape[1] or dropout > 0:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, **kwargs
        )
    # the plain interpreter, as the traced encoder runs it: the optimizing one profiled and
    # compiled again for every new batch shape (eager bf16 on the calibration split: 167-170
    # items/s against SDPA's 178-197; 199-201 against 194-205 with the plain one)
    with torch.jit.optimized_execution(False):
        out = attend_by_rows(query, key, value, attention_mask, scale, SCORES_PER_BLOCK)
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Known to transformers as ROWS, with SDPA's boolean masks."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ROWS, rows_attention_forward)
    AttentionMaskInterface.register(ROWS, sdpa_mask)


def use_attention(encoder: nn.Module, attention: str) -> str:
    """`encoder` on `attention` (ROWS or SDPA) where it runs through transformers' attention
    registry; the attention it runs on now (an encoder with attention of its own: its own)."""
    if not getattr(type(encoder), "_supports_attention_backend", False):
        return str(getattr(getattr(encoder, "config", None), "_attn_implementation", SDPA))
    if attention == ROWS:
        register()
    encoder.set_attn_implementation(attention)  # type: ignore[operator]
    return attention
