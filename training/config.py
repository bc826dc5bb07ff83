"""Experiment configs: one YAML file says what to train on, with what, and under which seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from prescore.data.load import DataSource
from prescore.data.problems import InputError, Problem
from prescore.eval.evaluate import EvaluationSettings
from prescore.models.base_model import resolve_base_model
from prescore.models.scorer import Scorer

SCORER_KINDS = ("tfidf", "embeddings", "transformer")


class ScorerSpec(BaseModel):
    """Which scorer to fit and its constructor arguments, as in scikit-learn's get_params."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["tfidf", "embeddings", "transformer"]
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params_exist(self) -> ScorerSpec:
        accepted = scorer_class(self.kind)().get_params()
        unknown = sorted(set(self.params) - set(accepted))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for {self.kind}; known: {sorted(accepted)}"
            )
        try:
            scorer = scorer_class(self.kind)(**self.params)
        except TypeError as error:
            raise ValueError(f"bad parameter for {self.kind}: {error}") from None
        check = getattr(scorer, "check_params", None)
        if check is not None:
            check()
        return self

    def build(self, seed: int) -> Scorer:
        cls = scorer_class(self.kind)
        params = dict(self.params)
        if "seed" in cls().get_params():
            params.setdefault("seed", seed)
        return cls(**params)


def scorer_class(kind: str) -> type[Scorer]:
    from prescore.models.embeddings import EmbeddingScorer
    from prescore.models.tfidf import TfidfScorer
    from prescore.models.transformer import TransformerScorer

    return {"tfidf": TfidfScorer, "embeddings": EmbeddingScorer, "transformer": TransformerScorer}[
        kind
    ]


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    data: DataSource
    scorer: ScorerSpec = Field(default_factory=lambda: ScorerSpec(kind="tfidf"))
    seed: int = 13
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    registered_model: str | None = Field(
        default=None, description="registry name; default prescore-<name>"
    )

    @property
    def model_name(self) -> str:
        return self.registered_model or f"prescore-{self.name}"


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
    config = _resolve_paths(config, path.parent)
    base_model = config.scorer.params.get("base_model")
    if base_model is not None:
        try:
            resolve_base_model(str(base_model))
        except FileNotFoundError as error:
            raise InputError(
                [Problem(str(path), None, "scorer.params.base_model", str(error))]
            ) from None
    return config


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
    scorer = config.scorer
    base_model = scorer.params.get("base_model")
    if isinstance(base_model, str) and (base / base_model).is_dir():
        params = {**scorer.params, "base_model": str((base / base_model).resolve())}
        scorer = scorer.model_copy(update={"params": params})
    return config.model_copy(update={"data": resolved, "scorer": scorer})


def _resolve(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()
