"""The encoder's forward as a TorchScript graph, so that a model call holds no GIL.

Eager PyTorch takes the GIL back after every op to run the next line of the model's Python.
In the service two model threads and the HTTP stack's threads share it: under 8 clients the
service left 8-15% of two cores idle, and py-spy found the model threads waiting for the GIL
in `gil_scoped_release` after their ops. Two model threads alone left 5.2% idle eager and
0.8-1.1% on the traced graph, which runs in TorchScript's interpreter without the GIL, on the
same kernels: its window sums equalled eager's bit for bit, padded batches included
(eval/RESULTS.md).

A trace records one path through the model's Python, so it is checked against eager on inputs
of other shapes, padded and not, and not used where it differs or fails. TorchScript is
deprecated in PyTorch; where tracing goes away, scoring goes on eager.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, cast

import torch
from torch import nn

logger = logging.getLogger("prescore.models")

# a trace warns of every Python value it records as a constant; the checks against eager
# decide instead. A filter for that category alone: catch_warnings() would swap the process's
# filters while a reload traces beside threads that are serving.
warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)

# eager and traced run the same kernels, so their sums were equal here; a hair of room
RTOL, ATOL = 1e-5, 1e-6


class SumsWindows(Protocol):
    def window_sums(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


class _Forward(nn.Module):
    """`window_sums` as a module's forward, which is what `torch.jit.trace` records."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return cast(SumsWindows, self.model).window_sums(input_ids, attention_mask)


def example(rows: int, length: int, padded_from: list[int], vocab: int) -> tuple[torch.Tensor, ...]:
    """Token ids and an attention mask; row i is padding from `padded_from[i]` (if given) on."""
    ids = (torch.arange(rows * length).reshape(rows, length) * 7919) % (vocab - 1) + 1
    mask = torch.ones_like(ids)
    for row, start in enumerate(padded_from):
        mask[row, start:] = 0
    return ids, mask


class EncoderGraph:
    """The traced `window_sums` of a model in eval mode, called like it."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph

    def window_sums(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # the plain interpreter: the optimizing one re-profiles every new batch shape
        with torch.no_grad(), torch.jit.optimized_execution(False):
            sums, counts = self.graph(input_ids, attention_mask)
        return sums, counts


@contextmanager
def quiet(name: str) -> Iterator[None]:
    """Logger `name` at ERROR meanwhile (a fraction of a second, process-wide): the trace
    reads every property of the model, and Hugging Face's loss_function property warns about
    a loss nobody here uses."""
    chosen = logging.getLogger(name)
    level = chosen.level
    chosen.setLevel(logging.ERROR)
    try:
        yield
    finally:
        chosen.setLevel(level)


def trace_window_sums(
    model: nn.Module, vocab: int, longest: int, bf16: bool
) -> EncoderGraph | None:
    """`model.window_sums` traced (under bf16 autocast if `bf16`), or None, logged with the
    reason, where the trace fails or does not give eager's sums on other shapes: padded, and
    unpadded short and long (up to half of `longest`, the encoder's positions).

    Traced on a padded batch, so the path with the attention mask is the one recorded. An
    encoder may skip the mask where nothing is padded (transformers 5.25 does not while
    tracing); where skipping it changes the sums, as it does slightly for MPNet in bf16, the
    unpadded checks send the model back to eager, which the copies' check measured."""

    def eager(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return cast(SumsWindows, model).window_sums(ids, mask)

    try:
        with (
            torch.no_grad(),
            torch.autocast("cpu", torch.bfloat16, enabled=bf16),
            quiet("transformers"),
        ):
            graph = EncoderGraph(
                torch.jit.trace(_Forward(model), example(2, 12, [7], vocab), check_trace=False)
            )
        checks = (
            example(3, 20, [20, 9, 15], vocab),
            example(1, 9, [], vocab),
            example(2, min(96, longest // 2), [], vocab),
        )
        for check in checks:
            for ours, theirs in zip(graph.window_sums(*check), eager(*check), strict=True):
                if ours.shape != theirs.shape or not torch.allclose(ours, theirs, RTOL, ATOL):
                    logger.warning("scoring eager: the traced encoder's sums differ from eager")
                    return None
    except Exception as failure:  # noqa: BLE001 - any failure to trace means: stay eager
        logger.warning("scoring eager: the encoder did not trace (%s)", type(failure).__name__)
        return None
    return graph
