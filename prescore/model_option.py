"""The `--model NAME@ALIAS` option every command shares (models/model_ref.py)."""

from __future__ import annotations

from typing import Any

import typer

from prescore.models.model_ref import FORMAT, BadModelReference, ModelRef, parse_model_ref


def model_option(default: Any, what: str) -> Any:
    """`--model` / `-m`, saying what a bare NAME means for this command."""
    return typer.Option(default, "--model", "-m", help=f"{FORMAT}; {what}")


def read_model(text: str) -> ModelRef:
    """The reference given, or the usage error Typer shows for a bad option."""
    try:
        return parse_model_ref(text)
    except BadModelReference as error:
        raise typer.BadParameter(str(error), param_hint="--model") from None


def named_version(ref: ModelRef) -> ModelRef:
    """The same reference, refused where it names no version (NAME alone)."""
    if ref.reference is None:
        raise typer.BadParameter(f"name the version: {ref.name}@VERSION", param_hint="--model")
    return ref
