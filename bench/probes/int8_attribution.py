"""Where an int8 copy's level changes come from: the encoder's Linear layers fake-quantized in
PyTorch (rounded to int8 and back, computed in fp32), weights and activations apart, each
variant checked as `prescore export-onnx` checks copies. A probe, not the product: it says which
quantization an int8 copy would need before anyone builds one (eval/RESULTS.md, issue 15).

    MLFLOW_TRACKING_URI=sqlite:///<registry>/mlflow.db python bench/probes/int8_attribution.py \\
        --model prescore-quickstart --version 1

Weights are rounded per output channel (as ONNX Runtime's dynamic quantization does) or in
blocks of 32 input weights per channel (as its MatMulNBits does);
activations per tensor (its DynamicQuantizeLinear: one asymmetric uint8 scale for the batch)
or per token (one scale per token's vector, which ONNX Runtime's dynamic quantization lacks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import typer

from prescore.models.onnx_copies import agreement
from prescore.training.run import version_evidence

Rounding = Callable[[torch.Tensor], torch.Tensor]


def weights_per_channel(w: torch.Tensor) -> torch.Tensor:
    scale = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127
    return torch.round(w / scale).clamp(-127, 127) * scale


def weights_in_blocks(w: torch.Tensor, block: int = 32) -> torch.Tensor:
    """One scale per 32 consecutive input weights of an output channel (as MatMulNBits)."""
    out, width = w.shape
    pad = (-width) % block
    blocks = torch.nn.functional.pad(w, (0, pad)).reshape(out, -1, block)
    return weights_per_channel(blocks.reshape(-1, block)).reshape(out, -1)[:, :width]


def asymmetric_uint8(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    scale = ((high - low) / 255).clamp_min(1e-12)
    zero = torch.round(-low / scale)
    return (torch.round(x / scale) + zero).clamp(0, 255).sub(zero) * scale


def activations_per_tensor(x: torch.Tensor) -> torch.Tensor:
    return asymmetric_uint8(x, x.min().clamp_max(0), x.max().clamp_min(0))


def activations_per_token(x: torch.Tensor) -> torch.Tensor:
    low = x.amin(dim=-1, keepdim=True).clamp_max(0)
    return asymmetric_uint8(x, low, x.amax(dim=-1, keepdim=True).clamp_min(0))


VARIANTS: dict[str, tuple[Rounding | None, Rounding | None]] = {
    "weights per channel, activations fp32": (weights_per_channel, None),
    "weights fp32, activations per tensor": (None, activations_per_tensor),
    "weights per channel, activations per tensor (ONNX Runtime's dynamic)": (
        weights_per_channel,
        activations_per_tensor,
    ),
    "weights per channel, activations per token": (weights_per_channel, activations_per_token),
    "weights in blocks of 32, activations fp32": (weights_in_blocks, None),
    "weights in blocks of 32, activations per token": (weights_in_blocks, activations_per_token),
}


def main(
    model: str = typer.Option(..., help="registered model name"),
    version: str = typer.Option(..., help="registered version"),
    only: list[str] = typer.Option([], help="variants to run (their names); all by default"),
) -> None:
    unknown = sorted(set(only) - set(VARIANTS))
    if unknown:
        raise typer.BadParameter(f"no such variants {unknown}; known: {list(VARIANTS)}")
    logging.getLogger().setLevel(logging.ERROR)
    found = version_evidence(model, version)
    calibration, test = found.calibration, found.test
    assert test is not None, "the version's evidence has no test split"
    scorer = found.scorer
    reference = {"cal": scorer.predict_proba(calibration), "test": scorer.predict_proba(test)}
    linears = [m for m in scorer.model_.encoder.modules() if isinstance(m, torch.nn.Linear)]
    weights = {id(m): m.weight.data.clone() for m in linears}
    print(f"{len(calibration)} calibration items, {len(test)} test items")
    print("| variant | calibration agreement | test agreement | largest probability "
          "difference (calibration) |")  # fmt: skip
    print("|---|---:|---:|---:|")
    for name, (round_weights, round_activations) in VARIANTS.items():
        if only and name not in only:
            continue
        hooks = []
        for m in linears:
            original = weights[id(m)]
            m.weight.data = original.clone() if round_weights is None else round_weights(original)
            if round_activations is not None:
                hooks.append(
                    m.register_forward_pre_hook(
                        lambda _, args, rounding=round_activations: (rounding(args[0]),)
                    )
                )
        on_calibration = agreement(reference["cal"], scorer.predict_proba(calibration), calibration)
        on_test = agreement(reference["test"], scorer.predict_proba(test), test)
        for hook in hooks:
            hook.remove()
        print(
            f"| {name} | {on_calibration.level_agreement:.2%} | {on_test.level_agreement:.2%} "
            f"| {on_calibration.max_probability_difference:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    typer.run(main)
