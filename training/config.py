"""Experiment configs: one YAML file says what to train on, with what, and under which seed."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from prescore.data.load import DataSource
from prescore.data.problems import InputError, Problem


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    data: DataSource


def load_config(path: Path) -> ExperimentConfig:
    """Read a config; relative paths inside it are taken from the config file's folder."""
    if not path.is_file():
        raise InputError([Problem(str(path), None, None, "config file not found")])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InputError([Problem(str(path), None, None, f"cannot read config: {error}")]) from None
    if not isinstance(raw, dict):
        raise InputError([Problem(str(path), None, None, "a config is a YAML mapping")])
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as error:
        raise InputError(
            [
                Problem(str(path), None, ".".join(map(str, e["loc"])), _config_message(e))
                for e in error.errors()
            ]
        ) from None
    return _resolve_paths(config, path.parent)


def _config_message(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field; check its spelling against the configs in experiments/"
    return str(error["msg"]).removeprefix("Value error, ")


def _resolve_paths(config: ExperimentConfig, base: Path) -> ExperimentConfig:
    data = config.data
    resolved = data.model_copy(
        update={
            "path": _resolve(data.path, base),
            "rubrics": _resolve(data.rubrics, base) if data.rubrics else None,
        }
    )
    return config.model_copy(update={"data": resolved})


def _resolve(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()
