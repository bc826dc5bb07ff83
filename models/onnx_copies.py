"""ONNX copies of a fine-tuned transformer scorer, and the check that decides whether one serves.

- What is exported: the encoder and each window's masked token sums (`ScoringModel.window_sums`),
  with dynamic window and token axes. Pooling a document's windows, the LayerNorm and the CORAL
  heads stay in the scorer (a few thousand multiply-adds per item): every runtime shares that
  code, and windows are batched by length across documents, which pooling inside the graph
  would forbid.
- torch.onnx's dynamo exporter: under transformers 5 the TorchScript exporter fixes the
  attention mask at the example's shape and gets padded windows wrong.
- int8: ONNX Runtime's block-wise int8 quantization of the fp32 copy (MatMulNBits: every weight
  MatMul's weights in blocks of BLOCK input channels, one scale each; activations quantized
  per block on the fly, accuracy level 4): no calibration data. Its dynamic quantization (one
  scale per output channel and one per activation tensor) runs faster but moved 2.6% of the
  quick-start model's test levels, and rounding the weights per channel alone moves 1.4%
  (eval/RESULTS.md): block-wise weights are what keeps 99%.
- torch-bf16: the PyTorch model itself under bfloat16 autocast, no file. Checked like the
  copies, and served only on a machine with bf16 instructions (elsewhere it is emulated).
  Its attention is row-wise (models/row_attention.py); the check records it, and a check
  from before it, which ran SDPA, serves SDPA.
- The check: each copy scores the calibration split beside PyTorch; the largest probability
  difference, the share of items whose suggested level is unchanged, and the QWK between the
  two are recorded. A copy that moves the level on more than MAX_LEVEL_CHANGES of the items is
  kept with its figures but never served, and the check says why.
- Speed: the check also times each runtime on the calibration split, PyTorch fp32 too. On the
  CPU the check ran on, serving takes the fastest runtime that passed, as measured; elsewhere
  (another CPU, or a check.json from before) the order of PREFERENCE. Which runtime is fastest
  depends on the CPU: bf16 ran 2.6x PyTorch fp32 with AVX512-BF16 and 3.5x slower without.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from prescore.models.hardware import cpu_description, int8_kernels, native_bf16, use_threads_for
from prescore.models.inputs import criterion_keys
from prescore.models.row_attention import ROWS, SDPA
from prescore.models.transformer import TORCH_BF16, TORCH_RUNTIME

if TYPE_CHECKING:
    from prescore.models.transformer import TransformerScorer

Copy = Literal["onnx-fp32", "onnx-int8", "torch-bf16"]
ONNX_FP32: Copy = "onnx-fp32"
ONNX_INT8: Copy = "onnx-int8"
BF16: Copy = TORCH_BF16
COPIES: tuple[Copy, ...] = (ONNX_FP32, ONNX_INT8, BF16)
# fastest first where the check's own timings do not apply (`usable`), as `prescore bench
# serving` measured on 2 CPU cores with AVX512-BF16 (eval/RESULTS.md): in-process at 8 clients
# bf16 ran 2.6x PyTorch fp32, dynamic int8 2.3x, onnx-fp32 1.6x (block-wise int8 about as fast
# as onnx-fp32). bf16 serves only where the machine runs it natively; PyTorch always passes.
PREFERENCE = (BF16, ONNX_INT8, ONNX_FP32, TORCH_RUNTIME)
RUNTIMES = (TORCH_RUNTIME, BF16, ONNX_FP32, ONNX_INT8)
FILES: dict[str, str] = {ONNX_FP32: "encoder-fp32.onnx", ONNX_INT8: "encoder-int8.onnx"}
CHECK_FILE = "check.json"
BLOCK = 32  # input channels per int8 weight scale
WARM_UP_ITEMS = 8  # scored before a runtime is timed: first calls build kernels and sessions
# a runtime displaces one earlier in PREFERENCE only when the check timed it this much faster:
# the same pass moved by a fifth within a minute on a shared host (eval/RESULTS.md)
SPEED_MARGIN = 0.10
MAX_LEVEL_CHANGES = 0.01  # share of calibration items whose suggested level a copy may move
OPSET = 18
# check.json is read ignoring fields this release does not know: a file a later release wrote
# (new figures beside the verdicts) still serves its passed copies after the code rolls back
CHECK_FILE_FIELDS = ConfigDict(extra="ignore", frozen=True)


class Agreement(BaseModel):
    """A copy against PyTorch fp32 on the same items."""

    model_config = CHECK_FILE_FIELDS

    items: int
    levels_moved: int = Field(description="items whose suggested level differs")
    max_probability_difference: float
    level_agreement: float = Field(description="share of items with the same suggested level")
    qwk: float = Field(description="QWK between the two runtimes' levels, mean over criteria")


class CopyCheck(BaseModel):
    model_config = CHECK_FILE_FIELDS

    file: str
    passed: bool
    reason: str = Field("", description="why the copy is not used; empty when it passed")
    calibration: Agreement
    test: Agreement | None = Field(None, description="the test split, for the record only")
    items_per_s: float | None = Field(
        None, description="calibration items scored per second on `checked_on`; None: not timed"
    )
    attention: str = Field(
        "", description="torch-bf16: the attention it was checked on; empty: SDPA, from before"
    )


class OnnxCopies(BaseModel):
    """check.json: what was exported, and which copies may serve."""

    model_config = CHECK_FILE_FIELDS

    max_level_changes: float
    opset: int
    copies: dict[str, CopyCheck]
    checked_on: str = Field("", description="the CPU the checks ran on; empty before it was kept")
    int8_kernels: str = Field(
        "", description="the int8 kernels the int8 check ran on (`int8_kernels()`); empty: unknown"
    )
    torch_items_per_s: float | None = Field(
        None, description="PyTorch fp32's calibration items per second beside the copies'"
    )

    def usable(self) -> list[str]:
        """Runtimes that may serve on this machine, fastest first; PyTorch is always among
        them, bf16 only where the machine has bf16 instructions, int8 only where its check ran
        on the same int8 kernels (`not_here`). Fastest as timed by the check where it ran on
        this CPU (a lead under SPEED_MARGIN keeps PREFERENCE's order), else PREFERENCE's."""
        allowed = [
            r
            for r in PREFERENCE
            if r == TORCH_RUNTIME
            or (self._passed(r) and (r != BF16 or native_bf16()) and not self.not_here(r))
        ]
        timed = {r: self.items_per_s(r) for r in allowed}
        speeds = {r: s for r, s in timed.items() if s is not None}
        if self.checked_on != cpu_description() or len(speeds) < len(allowed):
            return allowed
        ordered: list[str] = []
        while allowed:  # the first in PREFERENCE within SPEED_MARGIN of the fastest left
            fastest = max(speeds[r] for r in allowed)
            ordered.append(next(r for r in allowed if speeds[r] * (1 + SPEED_MARGIN) >= fastest))
            allowed.remove(ordered[-1])
        return ordered

    def items_per_s(self, runtime: str) -> float | None:
        """The check's timing of `runtime` on the calibration split; None where not timed."""
        if runtime == TORCH_RUNTIME:
            return self.torch_items_per_s
        return self.copies[runtime].items_per_s if runtime in self.copies else None

    def speed_vs_torch(self, runtime: str) -> float | None:
        """`runtime`'s items per second over PyTorch fp32's, as the check timed both."""
        speed = self.items_per_s(runtime)
        return (
            speed / self.torch_items_per_s if speed is not None and self.torch_items_per_s else None
        )

    def attention(self, runtime: str) -> str:
        """The attention `runtime` was checked on, and so serves on."""
        check = self.copies.get(runtime)
        return check.attention if check is not None and check.attention else SDPA

    def not_here(self, runtime: str) -> str:
        """Why a copy that passed its check may not serve on this machine, or "": an int8 copy
        checked on other int8 kernels computes other numbers here than the ones checked."""
        if runtime != ONNX_INT8 or not self.int8_kernels:
            return ""
        here = int8_kernels()
        if self.int8_kernels != here:
            return (
                f"its check ran on {self.int8_kernels} int8 kernels and this machine has {here}; "
                "check it here with `prescore export-onnx`"
            )
        return ""

    def _passed(self, runtime: str) -> bool:
        return runtime in self.copies and self.copies[runtime].passed

    def summary(self) -> dict[str, str]:
        """One line per copy, for the model version's tags."""
        out = {}
        for runtime, check in self.copies.items():
            figures = (
                f"level agreement {check.calibration.level_agreement:.2%} on "
                f"{check.calibration.items} calibration items, QWK {check.calibration.qwk:.3f}, "
                f"largest probability difference {check.calibration.max_probability_difference:.4f}"
            )
            speed = self.speed_vs_torch(runtime)
            if speed is not None:
                figures += f", {speed:.2f}x PyTorch's speed"
            out[runtime] = f"passed: {figures}" if check.passed else f"not used: {check.reason}"
        return out


def agreement(reference: np.ndarray, candidate: np.ndarray, X: pd.DataFrame) -> Agreement:
    """How far `candidate`'s probabilities are from `reference`'s on the items of X."""
    from sklearn.metrics import cohen_kappa_score

    a, b = reference.argmax(axis=1), candidate.argmax(axis=1)
    kappas = []
    keys = criterion_keys(X)
    for key in dict.fromkeys(keys):
        mine = keys == key
        levels = list(range(reference.shape[1]))
        same_everywhere = len(set(a[mine]) | set(b[mine])) == 1
        kappas.append(
            1.0
            if same_everywhere
            else float(cohen_kappa_score(a[mine], b[mine], labels=levels, weights="quadratic"))
        )
    return Agreement(
        items=len(X),
        levels_moved=int(np.sum(a != b)),
        max_probability_difference=float(np.abs(reference - candidate).max()) if len(X) else 0.0,
        level_agreement=float(np.mean(a == b)) if len(X) else 1.0,
        qwk=float(np.mean(kappas)) if kappas else 1.0,
    )


def judge(file: str, calibration: Agreement, test: Agreement | None) -> CopyCheck:
    if calibration.items == 0:
        return CopyCheck(
            file=file,
            passed=False,
            reason="no calibration items to check it on",
            calibration=calibration,
        )
    if calibration.levels_moved > MAX_LEVEL_CHANGES * calibration.items:
        reason = (
            f"moves the suggested level on {calibration.levels_moved / calibration.items:.2%} "
            f"of {calibration.items} calibration items (at most {MAX_LEVEL_CHANGES:.0%} allowed)"
        )
        return CopyCheck(file=file, passed=False, reason=reason, calibration=calibration, test=test)
    return CopyCheck(file=file, passed=True, calibration=calibration, test=test)


def export_encoder(scorer: TransformerScorer, path: Path) -> Path:
    """The scorer's encoder and window sums as one ONNX file (weights inside it)."""
    import torch
    from torch import nn
    from torch.export import Dim

    model = scorer.model_

    class WindowSums(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            return self.model.window_sums(input_ids, attention_mask)

    example = torch.full((2, 16), scorer.tokenizer_.pad_token_id or 0, dtype=torch.long)
    windows, tokens = Dim("windows"), Dim("tokens", max=scorer.max_length)
    axes = {0: windows, 1: tokens}
    device = next(model.parameters()).device
    model.cpu().eval()
    try:
        with torch.no_grad():
            torch.onnx.export(
                WindowSums().eval(),
                (example, torch.ones_like(example)),
                str(path),
                input_names=["input_ids", "attention_mask"],
                output_names=["token_sums", "token_counts"],
                dynamic_shapes={"input_ids": axes, "attention_mask": axes},
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    finally:
        model.to(device)
    return path


def quantize(
    fp32: Path, out: Path, bits: int = 8, block: int = BLOCK, accuracy_level: int = 4
) -> Path:
    """ONNX Runtime's block-wise quantization of an fp32 copy (module docstring); the defaults
    are the int8 copy served, the others what bench/probes/int8_variants.py compares."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(
        block_size=block, is_symmetric=True, accuracy_level=accuracy_level, bits=bits
    )
    quantizer = MatMulNBitsQuantizer(onnx.load(str(fp32)), algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), False)
    return out


def timed_proba(scorer: TransformerScorer, X: pd.DataFrame) -> tuple[np.ndarray, float]:
    """`scorer`'s probabilities for X and its items per second, after a warm-up on a few,
    with torch's threads as the service sets them for its runtime."""
    use_threads_for(scorer.runtime)
    scorer.predict_proba(X.head(WARM_UP_ITEMS))
    start = time.perf_counter()
    proba = scorer.predict_proba(X)
    return proba, len(X) / max(time.perf_counter() - start, 1e-9)


def load_copy(
    folder: Path, runtime: str, scorer: TransformerScorer, attention: str = ROWS
) -> TransformerScorer:
    """`scorer` switched to the copy `runtime` in `folder` (the version's ONNX artifact), or
    to bf16 on `attention`, which needs no file."""
    if runtime == BF16:
        return scorer.use_bf16(attention)
    return scorer.use_onnx(folder / FILES[runtime], runtime)


def make_copies(
    scorer: TransformerScorer,
    folder: Path,
    calibration: pd.DataFrame,
    test: pd.DataFrame | None = None,
    copies: tuple[Copy, ...] = COPIES,
    on_step: Callable[[], None] = lambda: None,
) -> OnnxCopies:
    """Export `copies` of a fitted scorer into `folder`, check each against PyTorch on the
    calibration split (and, for the record, the test split), and write check.json there.
    `on_step` is called after the export and after each copy's check.

    The scorer itself keeps running PyTorch (`check_copies`)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / FILES[ONNX_FP32]
    if ONNX_FP32 in copies or ONNX_INT8 in copies:
        export_encoder(scorer, fp32)
    if ONNX_INT8 in copies:
        quantize(fp32, folder / FILES[ONNX_INT8])
    on_step()
    threads = torch.get_num_threads()
    try:
        checks, torch_speed = check_copies(scorer, folder, calibration, test, copies, on_step)
    finally:  # the caller's thread gets its torch threads back
        torch.set_num_threads(threads)
    if ONNX_FP32 not in copies:  # exported only to quantize, or not at all
        fp32.unlink(missing_ok=True)
    result = OnnxCopies(
        max_level_changes=MAX_LEVEL_CHANGES,
        opset=OPSET,
        copies=checks,
        checked_on=cpu_description(),
        int8_kernels=int8_kernels() if ONNX_INT8 in copies else "",
        torch_items_per_s=torch_speed,
    )
    (folder / CHECK_FILE).write_text(result.model_dump_json(indent=2))
    return result


def check_copies(
    scorer: TransformerScorer,
    folder: Path,
    calibration: pd.DataFrame,
    test: pd.DataFrame | None,
    copies: tuple[Copy, ...],
    on_step: Callable[[], None],
) -> tuple[dict[str, CopyCheck], float]:
    """Each copy's check, and PyTorch fp32's calibration items per second. Every runtime runs
    on a scorer of its own loaded from disk, the reference too: PyTorch fp32 on the CPU, as it
    serves (a scorer just fitted may still be on a GPU, under autocast)."""
    from prescore.models.scorer import load_scorer

    checks: dict[str, CopyCheck] = {}
    with tempfile.TemporaryDirectory() as saved:
        scorer.save(Path(saved))
        pytorch = load_scorer(Path(saved))
        assert isinstance(pytorch, type(scorer))
        reference = {}
        reference["calibration"], torch_speed = timed_proba(pytorch, calibration)
        if test is not None:
            reference["test"] = pytorch.predict_proba(test)
        del pytorch
        for runtime in copies:
            copy = load_copy(folder, runtime, load_scorer(Path(saved)))
            proba, speed = timed_proba(copy, calibration)
            on_calibration = agreement(reference["calibration"], proba, calibration)
            on_test = (
                agreement(reference["test"], copy.predict_proba(test), test)
                if test is not None
                else None
            )
            check = judge(FILES.get(runtime, ""), on_calibration, on_test)
            ran_on = copy.attention_ if runtime == BF16 else ""
            checks[runtime] = check.model_copy(update={"items_per_s": speed, "attention": ran_on})
            on_step()
    return checks, torch_speed


def read_copies(folder: Path) -> OnnxCopies | None:
    """The check written beside a version's copies; None for a version without copies."""
    check = folder / CHECK_FILE
    if not check.is_file():
        return None
    return OnnxCopies.model_validate(json.loads(check.read_text()))
