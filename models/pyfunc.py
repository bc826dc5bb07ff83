"""A saved scorer as an MLflow pyfunc model, so `mlflow.pyfunc.load_model` predicts with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema

from prescore.models.inputs import INPUT_COLUMNS

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")


class ScorerModel(PythonModel):
    def load_context(self, context: Any) -> None:
        from prescore.models.scorer import load_scorer

        self.scorer = load_scorer(Path(context.artifacts["scorer"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        probabilities = self.scorer.predict_proba(model_input)
        out = pd.DataFrame(probabilities, columns=[f"p_{k}" for k in range(probabilities.shape[1])])
        out.insert(0, "level", probabilities.argmax(axis=1))
        return out


def signature(width: int) -> ModelSignature:
    return ModelSignature(
        inputs=Schema([ColSpec("string", name) for name in INPUT_COLUMNS]),
        outputs=Schema(
            [ColSpec("long", "level"), *(ColSpec("double", f"p_{k}") for k in range(width))]
        ),
    )
