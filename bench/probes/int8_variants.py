"""Which int8 quantization keeps a registered model's suggested levels: each variant of its ONNX
fp32 copy checked as `prescore export-onnx` checks copies, and timed. A probe, not the product:
it records what was tried for issue 15 (eval/RESULTS.md) so the next attempt starts from there.

    MLFLOW_TRACKING_URI=sqlite:///<registry>/mlflow.db python bench/probes/int8_variants.py \\
        --model prescore-quickstart --version 1

Variants: ONNX Runtime's dynamic quantization (per-channel int8 weights, one activation scale
per tensor; what the product exported until 2026-12-04), the same with FFN or attention-output
MatMuls kept fp32, and MatMulNBits (blockwise int8 or int4 weights; accuracy level 4 also
quantizes activations per block, 0 computes in fp32; int8 at level 4 is what the product
exports now).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import onnx
import pandas as pd
import torch
import typer
from onnxruntime.quantization import QuantType, quantize_dynamic

from prescore.models.onnx_copies import (
    ONNX_FP32,
    ONNX_INT8,
    agreement,
    export_encoder,
    quantize,
)
from prescore.models.scorer import load_scorer
from prescore.models.transformer import TransformerScorer
from prescore.training.run import version_evidence


def dynamic(fp32: Path, out: Path, keep_fp32: tuple[str, ...] = ()) -> Path:
    """ONNX Runtime's dynamic quantization (what export-onnx wrote before 2026-12-04): int8
    MatMul weights per output channel, one activation scale per tensor; the MatMul nodes named
    in `keep_fp32` stay fp32."""
    quantize_dynamic(
        fp32,
        out,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        nodes_to_exclude=list(keep_fp32),
    )
    return out


def matmuls_fed_by(fp32: Path, prefix: str) -> tuple[str, ...]:
    """Names of the weight MatMuls whose input tensor's name starts with `prefix` (the
    dynamo exporter names a GELU's output `gelu_N`, an attention output `view_N`)."""
    graph = onnx.load(str(fp32)).graph
    weights = {i.name for i in graph.initializer}
    return tuple(
        n.name
        for n in graph.node
        if n.op_type == "MatMul" and n.input[1] in weights and n.input[0].startswith(prefix)
    )


def variants(fp32: Path, folder: Path) -> dict[str, Callable[[], Path]]:
    ffn_out, attention_out = matmuls_fed_by(fp32, "gelu"), matmuls_fed_by(fp32, "view_")
    return {
        "onnx-fp32": lambda: fp32,
        "dynamic": lambda: dynamic(fp32, folder / "d.onnx"),
        "dynamic, FFN output fp32": lambda: dynamic(fp32, folder / "d1.onnx", ffn_out),
        "dynamic, FFN and attention output fp32": lambda: dynamic(
            fp32, folder / "d2.onnx", ffn_out + attention_out
        ),
        "int8 blocks of 32, int8 compute (exported)": lambda: quantize(fp32, folder / "n1.onnx"),
        "int8 blocks of 32, fp32 compute": lambda: quantize(
            fp32, folder / "n2.onnx", accuracy_level=0
        ),
        "int4 blocks of 32, int8 compute": lambda: quantize(fp32, folder / "n3.onnx", bits=4),
    }


def timed(score: Callable[[pd.DataFrame], object], items: pd.DataFrame) -> tuple[float, float]:
    """One item at a time p50 (ms), and items/s in batches of 8."""
    single = []
    for k in range(len(items)):
        started = time.perf_counter()
        score(items.iloc[k : k + 1])
        single.append(1000 * (time.perf_counter() - started))
    started = time.perf_counter()
    for k in range(0, len(items), 8):
        score(items.iloc[k : k + 8])
    return statistics.median(single), len(items) / (time.perf_counter() - started)


def main(
    model: str = typer.Option(..., help="registered model name"),
    version: str = typer.Option(..., help="registered version"),
    timed_items: int = typer.Option(40, help="test items to time each variant on"),
) -> None:
    logging.getLogger().setLevel(logging.ERROR)  # the quantizers advise on every call
    torch.set_num_threads(1)  # torch runs only the heads, as the service sets it
    found = version_evidence(model, version)
    calibration, test = found.calibration, found.test
    assert test is not None, "the version's evidence has no test split"
    reference = {
        "cal": found.scorer.predict_proba(calibration),
        "test": found.scorer.predict_proba(test),
    }
    print(f"{len(calibration)} calibration items, {len(test)} test items")
    print("| variant | calibration agreement | test agreement | largest probability difference "
          "| one item p50 (ms) | items/s, batches of 8 |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as saved:
        folder = Path(saved)
        found.scorer.save(folder / "scorer")
        fp32 = export_encoder(found.scorer, folder / "fp32.onnx")
        for name, make in variants(fp32, folder).items():
            runtime = ONNX_FP32 if name == ONNX_FP32 else ONNX_INT8
            scorer = load_scorer(folder / "scorer")
            assert isinstance(scorer, TransformerScorer)
            copy = scorer.use_onnx(make(), runtime)
            on_calibration = agreement(
                reference["cal"], copy.predict_proba(calibration), calibration
            )
            on_test = agreement(reference["test"], copy.predict_proba(test), test)
            p50, rate = timed(copy.predict_proba, test.head(timed_items))
            print(
                f"| {name} | {on_calibration.level_agreement:.2%} | {on_test.level_agreement:.2%} "
                f"| {on_calibration.max_probability_difference:.3f} | {p50:.1f} | {rate:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    typer.run(main)
