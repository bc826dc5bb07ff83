"""Score evidence with a registered model and route it with the policy fitted beside it.

The BentoML service wires HTTP to `ScoringModel.score`; nothing here knows about HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prescore.eval.calibration import apply_temperature
from prescore.eval.routing import RoutingPolicy
from prescore.models.scorer import Scorer, load_scorer
from prescore.serving.schemas import EvidenceToScore, LevelProbability, ScoredEvidence


class UnknownCriterion(ValueError):
    def __init__(self, unknown: list[tuple[int, str]]) -> None:
        self.unknown = unknown
        listed = ", ".join(f"items[{i}]: {key}" for i, key in unknown)
        super().__init__(f"this model does not score {listed}; GET /credentials lists what it does")


@dataclass(frozen=True)
class ScoringModel:
    scorer: Scorer
    policy: RoutingPolicy
    name: str
    version: str

    @classmethod
    def from_registry(cls, name: str, alias_or_version: str = "champion") -> ScoringModel:
        """The scorer and routing policy of a registered model version."""
        import mlflow
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        if alias_or_version.isdigit():
            version = client.get_model_version(name, alias_or_version)
        else:
            version = client.get_model_version_by_alias(name, alias_or_version)
        folder = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}"))
        return cls.from_folder(folder, name, str(version.version))

    @classmethod
    def from_folder(cls, folder: Path, name: str, version: str) -> ScoringModel:
        """From a downloaded MLflow model folder: artifacts/scorer and artifacts/routing_policy."""
        artifacts = folder / "artifacts"
        policy_file = next(artifacts.glob("routing_policy*"), None)
        if policy_file is None:
            raise FileNotFoundError(
                f"{name} version {version} has no routing policy (it predates evaluation); retrain"
            )
        policy = RoutingPolicy.model_validate(json.loads(policy_file.read_text()))
        return cls(load_scorer(artifacts / "scorer"), policy, name, version)

    def unknown_criteria(self, items: list[EvidenceToScore]) -> list[tuple[int, str]]:
        """(position, 'credential/criterion') of each item this model cannot score."""
        return [
            (i, f"{item.credential_id}/{item.criterion_id}")
            for i, item in enumerate(items)
            if self.policy.criterion(item.credential_id, item.criterion_id) is None
        ]

    def score(self, items: list[EvidenceToScore]) -> list[ScoredEvidence]:
        """One prediction per item, in order. Check `unknown_criteria` first: they raise."""
        unknown = self.unknown_criteria(items)
        if unknown:
            raise UnknownCriterion(unknown)
        if not items:
            return []
        frame = pd.DataFrame(
            [
                {"text": i.text, "credential_id": i.credential_id, "criterion_id": i.criterion_id}
                for i in items
            ]
        )
        raw = self.scorer.predict_proba(frame)
        return [self._scored(item, row) for item, row in zip(items, raw, strict=True)]

    def _scored(self, item: EvidenceToScore, raw: np.ndarray) -> ScoredEvidence:
        policy = self.policy.criterion(item.credential_id, item.criterion_id)
        assert policy is not None
        levels = len(policy.level_labels)
        calibrated = apply_temperature(raw[None, :levels], policy.temperature)[0]
        best = int(calibrated.argmax())
        decision = self.policy.decide(
            item.credential_id, item.criterion_id, item.text, float(calibrated[best])
        )
        return ScoredEvidence(
            submission_id=item.submission_id,
            credential_id=item.credential_id,
            criterion_id=item.criterion_id,
            level=policy.level_labels[best],
            level_value=policy.level_values[best],
            probabilities=[
                LevelProbability(label=label, value=value, probability=float(p))
                for label, value, p in zip(
                    policy.level_labels, policy.level_values, calibrated, strict=True
                )
            ],
            confidence=float(calibrated[best]),
            prediction_set=[
                policy.level_labels[k] for k in policy.prediction_set(calibrated.tolist())
            ],
            route=decision.route,
            reasons=list(decision.reasons),
            model_name=self.name,
            model_version=self.version,
        )
