"""The model registry: which versions exist, and moving `champion` only to a better one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel
from mlflow.tracking import MlflowClient

CHAMPION = "champion"
PROMOTION_METRIC = "test_qwk_mean"


@dataclass(frozen=True)
class VersionSummary:
    version: str
    aliases: list[str]
    run_id: str
    scorer: str
    metrics: dict[str, float]
    test_fingerprint: str


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    candidate: VersionSummary
    champion: VersionSummary | None
    margin: float | None
    reason: str


def list_versions(model_name: str) -> list[VersionSummary]:
    client = MlflowClient()
    try:
        # search results leave aliases out; the registered model holds them
        aliases = client.get_registered_model(model_name).aliases
        versions = client.search_model_versions(f"name='{model_name}'")
    except MlflowException:
        return []
    summaries = (_summary(client, v, aliases) for v in versions)
    return sorted(summaries, key=lambda s: int(s.version))


def _summary(client: MlflowClient, version: Any, aliases: dict[str, str]) -> VersionSummary:
    run = client.get_run(version.run_id)
    return VersionSummary(
        version=str(version.version),
        aliases=sorted(a for a, v in aliases.items() if str(v) == str(version.version)),
        run_id=str(version.run_id),
        scorer=run.data.params.get("scorer", ""),
        metrics=dict(run.data.metrics),
        test_fingerprint=run.data.params.get("data.test.fingerprint", ""),
    )


def promote(
    model_name: str, version: str | None = None, metric: str = PROMOTION_METRIC
) -> Promotion:
    """Point `champion` at `version` (default: the newest) only if it beats the champion.

    Both must have been measured on the same held-out evidence (equal test fingerprints);
    otherwise their numbers are not comparable and nothing moves.
    """
    versions = list_versions(model_name)
    if not versions:
        raise LookupError(f"no registered model {model_name!r}; train one with `prescore train`")
    by_version = {v.version: v for v in versions}
    if version is not None and version not in by_version:
        raise LookupError(
            f"{model_name} has no version {version}; versions: {sorted(by_version, key=int)}"
        )
    candidate = by_version[version] if version else versions[-1]
    champion = next((v for v in versions if CHAMPION in v.aliases), None)
    if metric not in candidate.metrics:
        raise LookupError(
            f"version {candidate.version} has no {metric} (was its test split empty?)"
        )

    def move() -> None:
        MlflowClient().set_registered_model_alias(model_name, CHAMPION, candidate.version)

    if champion is None:
        move()
        return Promotion(True, candidate, None, None, "there was no champion")
    if champion.version == candidate.version:
        return Promotion(False, candidate, champion, 0.0, "it already is the champion")
    if not has_routing_policy(champion) and has_routing_policy(candidate):
        move()
        return Promotion(
            True, candidate, champion, None, "the champion predates routing and cannot be served"
        )
    if champion.test_fingerprint != candidate.test_fingerprint:
        return Promotion(
            False,
            candidate,
            champion,
            None,
            "the two were tested on different held-out evidence, so their scores don't compare; "
            "retrain the champion's config on the same data first",
        )
    margin = candidate.metrics[metric] - champion.metrics.get(metric, float("-inf"))
    if margin > 0:
        move()
        return Promotion(True, candidate, champion, margin, f"{metric} is higher by {margin:.4f}")
    return Promotion(False, candidate, champion, margin, f"{metric} is not higher ({margin:+.4f})")


def has_routing_policy(version: VersionSummary) -> bool:
    """Runs log the routing policy beside their evaluation report; versions from before
    evaluation existed have none, and the service refuses them."""
    logged = MlflowClient().list_artifacts(version.run_id, "evaluation")
    return any(a.path.endswith("routing_policy.json") for a in logged)


def registered_version(model_name: str, alias_or_version: str) -> Any:
    """The MLflow ModelVersion an alias names, or the version itself when given its number;
    MlflowException where there is none."""
    client = MlflowClient()
    if alias_or_version.isdigit():
        return client.get_model_version(model_name, alias_or_version)
    return client.get_model_version_by_alias(model_name, alias_or_version)


def model_uri(model_name: str, alias: str = CHAMPION) -> str:
    return f"models:/{model_name}@{alias}"


def load_model(model_name: str, alias: str = CHAMPION) -> PyFuncModel:
    return mlflow.pyfunc.load_model(model_uri(model_name, alias))
