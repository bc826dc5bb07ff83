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
from prescore.models.scorer import Scorer, make_scorer, scorer_class


class ScorerSpec(BaseModel):
    """Which scorer to fit and its constructor arguments, as in scikit-learn's get_params."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["tfidf", "essay", "embeddings", "transformer", "ensemble"]
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params_work(self) -> ScorerSpec:
        make_scorer(self.kind, self.params)  # one clear ValueError per problem
        return self

    def with_params(self, assignments: list[str]) -> ScorerSpec:
        """This spec with `NAME=VALUE` assignments (YAML values) over its params, checked like
        a config's: candidate recipes run from one config, each labelled apart in tables."""
        overrides: dict[str, Any] = {}
        for assignment in assignments:
            name, equals, value = assignment.partition("=")
            if not equals or not name.strip():
                raise ValueError(
                    f"--param needs NAME=VALUE, e.g. layer_lr_decay=0.9; got {assignment!r}"
                )
            overrides[name.strip()] = yaml.safe_load(value)
        return ScorerSpec(kind=self.kind, params={**self.params, **overrides})

    def build(self, seed: int) -> Scorer:
        """The scorer, unfitted; the config's seed unless its params name their own. The
        params were checked when this spec was made, so it is built once, here."""
        cls = scorer_class(self.kind)
        if "seed" in cls._get_param_names():
            return cls(**{"seed": seed, **self.params})
        return cls(**self.params)


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
    onnx_copies: list[Literal["onnx-fp32", "onnx-int8", "torch-bf16"]] = Field(
        default=["onnx-fp32", "onnx-int8", "torch-bf16"],
        description="faster copies a transformer scorer is registered with (ONNX files, and "
        "PyTorch under bf16, which needs none), each checked against PyTorch fp32 on the "
        "calibration split; [] for none",
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
    for where, params in scorer_params(config.scorer):
        base_model = params.get("base_model")
        if base_model is None:
            continue
        try:
            resolve_base_model(str(base_model))
        except FileNotFoundError as error:
            raise InputError(
                [Problem(str(path), None, f"{where}.base_model", str(error))]
            ) from None
    return config


def scorer_params(scorer: ScorerSpec) -> list[tuple[str, dict[str, Any]]]:
    """(where in the config, params) of the scorer and, for an ensemble, of each member."""
    out = [("scorer.params", scorer.params)]
    if scorer.kind == "ensemble":
        members = scorer.params.get("members") or []
        out += [
            (f"scorer.params.members.{n}.params", dict(m.get("params") or {}))
            for n, m in enumerate(members)
        ]
    return out


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
    params = _resolve_base_model(config.scorer.params, base)
    if config.scorer.kind == "ensemble" and isinstance(params.get("members"), list):
        params["members"] = [
            {**m, "params": _resolve_base_model(dict(m.get("params") or {}), base)}
            for m in params["members"]
        ]
    scorer = config.scorer.model_copy(update={"params": params})
    return config.model_copy(update={"data": resolved, "scorer": scorer})


def _resolve_base_model(params: dict[str, Any], base: Path) -> dict[str, Any]:
    """A base model given as a folder relative to the config is made absolute."""
    base_model = params.get("base_model")
    if isinstance(base_model, str) and (base / base_model).is_dir():
        return {**params, "base_model": str((base / base_model).resolve())}
    return dict(params)


def _resolve(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()
