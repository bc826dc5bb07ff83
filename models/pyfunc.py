"""A registered version as an MLflow pyfunc model: `mlflow.pyfunc.load_model(uri).predict(df)`
(and `mlflow.pyfunc.spark_udf`) give each row the score, route and submission decision that
POST /score and `prescore predict` give, from the same scoring core (eval/scoring.py).

The pyfunc is the whole version (scorer, routing policy, rubrics), so it reaches past models/
into eval/; it does so inside its methods, and only MLflow runs them, so importing models/
never pulls in a later stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema

from prescore.models.registry import POLICY_ARTIFACT, REGISTERED_FILE, SCORER_ARTIFACT

if TYPE_CHECKING:
    from prescore.eval.routing import RoutingPolicy
    from prescore.eval.scoring import ScoredBy
    from prescore.models.scorer import Scorer

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
# what predict reads is the scoring core's items (eval/scoring.py ITEM_COLUMNS): submission_id
# groups a submission's items (without it, each row is one); the text is scored and checked,
# never returned
OPTIONAL_INPUTS = ("submission_id",)


class ScoringPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        from prescore.eval.routing import RoutingPolicy
        from prescore.eval.scoring import ScoredBy
        from prescore.models.scorer import load_scorer

        scorer_folder = Path(context.artifacts[SCORER_ARTIFACT])
        self.scorer: Scorer = load_scorer(scorer_folder)
        policy_file = Path(context.artifacts[POLICY_ARTIFACT])
        self.policy: RoutingPolicy = RoutingPolicy.model_validate_json(policy_file.read_text())
        # written beside the artifacts once the version is registered (training/run.py)
        registered = scorer_folder.parent / REGISTERED_FILE
        names = json.loads(registered.read_text()) if registered.is_file() else {}
        self.scored_by: ScoredBy = ScoredBy(
            names.get("model_name", ""), names.get("model_version", ""), self.scorer.runtime
        )

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        from prescore.eval.scoring import as_text, raw_probabilities, score_rows, score_submissions

        frame = model_input.reset_index(drop=True)
        submission = (
            frame["submission_id"]
            if "submission_id" in frame
            else pd.Series([None] * len(frame), dtype=object)
        )
        numbered = pd.Series([f"row-{n}" for n in range(len(frame))])
        items = pd.DataFrame(
            {
                "submission_id": submission.where(submission.notna(), numbered).astype(str),
                "credential_id": frame["credential_id"].astype(str),
                "criterion_id": frame["criterion_id"].astype(str),
                "text": frame["text"].astype(str),
            }
        )
        raw = raw_probabilities(self.scorer, self.policy, items)
        scores, decisions = score_submissions(self.policy, items, raw, self.scored_by)
        rows = [{k: as_text(v) for k, v in row.items()} for row in score_rows(scores, decisions)]
        return pd.DataFrame(rows, columns=list(score_columns()))


def score_columns() -> dict[str, str]:
    from prescore.eval.scoring import SCORE_COLUMNS

    return SCORE_COLUMNS


def signature() -> ModelSignature:
    from prescore.eval.scoring import ITEM_COLUMNS

    return ModelSignature(
        inputs=Schema(
            [ColSpec("string", name, required=name not in OPTIONAL_INPUTS) for name in ITEM_COLUMNS]
        ),
        outputs=Schema([ColSpec(kind, name) for name, kind in score_columns().items()]),
    )
