"""The MLflow store and its model registry: where runs live, which versions exist, how one
is fetched, and moving `champion` only to a better version.

Training registers versions; `prescore serve`, `evaluate`, `bench serving` and the scoring
service fetch them, all through this module, so serving never imports training.

The local store follows the user, as MLflow's own default does: `mlflow.db` and `mlruns/` in
the working directory, unless MLFLOW_TRACKING_URI names another store (a tracking server).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prescore import defaults

if TYPE_CHECKING:
    from prescore.data.schema import Credential
    from prescore.models.onnx_copies import OnnxCopies
    from prescore.models.scorer import Scorer

CHAMPION = defaults.MODEL_ALIAS
PROMOTION_METRIC = "test_qwk_mean"
LOCAL_STORE = "mlflow.db"
LOCAL_ARTIFACTS = "mlruns"
SCORER_ARTIFACT = "scorer"
ONNX_ARTIFACT = "onnx"  # the ONNX copies and their check (models/onnx_copies.py)
AUTO_RUNTIME = "auto"
POLICY_ARTIFACT = "routing_policy"  # the artifact: the routing policy fitted beside the scorer
POLICY_ARTIFACT_PREFIX = POLICY_ARTIFACT  # the file's name, with its suffix after it
RUBRICS_ARTIFACT = "rubrics"  # the rubric files the version was trained on
REGISTERED_FILE = "registered.json"  # in artifacts/: the name and version it was registered as
FETCHED_STAMP = ".prescore-fetched"  # in a fetched folder: which state of the version it holds


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI where set, else the SQLite store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / LOCAL_STORE}"


def configure_tracking() -> str:
    """Point MLflow at the configured store and return its URI.

    The registry lives in the same store unless MLFLOW_REGISTRY_URI, which MLflow reads
    itself, names another.
    """
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def local_artifact_location(uri: str) -> Path | None:
    """Where a local SQLite store keeps run artifacts (`mlruns/` beside it); None for a server
    or where MLFLOW_ARTIFACTS_DESTINATION decides."""
    if not uri.startswith("sqlite:///") or "MLFLOW_ARTIFACTS_DESTINATION" in os.environ:
        return None
    return Path(uri.removeprefix("sqlite:///")).parent / LOCAL_ARTIFACTS


@dataclass(frozen=True)
class RegisteredModel:
    """One registered version, downloaded: the MLflow model folder with its artifacts."""

    name: str
    version: str
    folder: Path

    @property
    def artifacts(self) -> Path:
        return self.folder / "artifacts"

    def scorer(self, runtime: str = AUTO_RUNTIME) -> Scorer:
        """The scorer on `runtime`: "auto" picks the fastest ONNX copy that passed its check,
        else PyTorch; a runtime named outright that this version cannot run raises ValueError
        saying why. Ready to serve: computing without the GIL where it can (`use_graph`)."""
        return self._scorer_on(runtime).use_graph()

    def _scorer_on(self, runtime: str) -> Scorer:
        from prescore.models.onnx_copies import RUNTIMES, load_copy
        from prescore.models.scorer import load_scorer
        from prescore.models.transformer import TORCH_RUNTIME, TransformerScorer

        if runtime != AUTO_RUNTIME and runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; known: auto, {', '.join(RUNTIMES)}")
        scorer = load_scorer(self.artifacts / SCORER_ARTIFACT)
        if runtime in (AUTO_RUNTIME, TORCH_RUNTIME) and not isinstance(scorer, TransformerScorer):
            return scorer
        if not isinstance(scorer, TransformerScorer):
            raise ValueError(
                f"{self.label} is a {scorer.kind} scorer: only transformer scorers have ONNX copies"
            )
        if runtime == TORCH_RUNTIME:
            return scorer
        copies = self.onnx_copies()
        if runtime == AUTO_RUNTIME:
            runtime = copies.usable()[0] if copies else TORCH_RUNTIME
        if runtime == TORCH_RUNTIME:
            return scorer
        if copies is None or runtime not in copies.copies:
            raise ValueError(
                f"{self.label} has no {runtime} copy; add it with `prescore export-onnx "
                f"--model {self.name}@{self.version}`"
            )
        if not copies.copies[runtime].passed:
            raise ValueError(
                f"{self.label}'s {runtime} copy is not used: {copies.copies[runtime].reason}"
            )
        elsewhere = copies.not_here(runtime)
        if elsewhere:
            raise ValueError(f"{self.label}'s {runtime} copy is not used here: {elsewhere}")
        return load_copy(self.artifacts / ONNX_ARTIFACT, runtime, scorer, copies.attention(runtime))

    @property
    def label(self) -> str:
        return f"{self.name} version {self.version}"

    def onnx_copies(self) -> OnnxCopies | None:
        """The ONNX copies' check; None for a version without copies (trained before them,
        or not a transformer)."""
        from prescore.models.onnx_copies import read_copies

        return read_copies(self.artifacts / ONNX_ARTIFACT)

    def routing_policy_file(self) -> Path | None:
        """The routing policy fitted beside the scorer; None for versions from before it."""
        return next(self.artifacts.glob(f"{POLICY_ARTIFACT_PREFIX}*"), None)

    def rubrics(self) -> dict[str, Credential] | None:
        """The rubrics the version was trained on, by credential id; None for versions
        trained before they were stored with it."""
        from prescore.data.rubrics import load_rubrics

        folder = self.artifacts / RUBRICS_ARTIFACT
        return load_rubrics(folder) if folder.is_dir() else None


def registered_version(model_name: str, alias_or_version: str) -> Any:
    """The MLflow ModelVersion an alias names, or the version itself when given its number;
    MlflowException where there is none."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    if alias_or_version.isdigit():
        return client.get_model_version(model_name, alias_or_version)
    return client.get_model_version_by_alias(model_name, alias_or_version)


def fetch(model_name: str, alias_or_version: str = CHAMPION) -> RegisteredModel:
    """The version an alias (or number) names, from the configured store, downloaded once:
    its folder in the cache (`fetched_folder`) is reused while the version is unchanged, so
    reloads and repeated loads do not pile up copies."""
    configure_tracking()
    found = registered_version(model_name, alias_or_version)
    version = str(found.version)
    return RegisteredModel(model_name, version, fetched_folder(model_name, found))


def registry_cache() -> Path:
    """Where fetched versions are kept: PRESCORE_CACHE_DIR, else the user's cache folder."""
    from prescore.models.mpnet import cache_root

    return cache_root() / "registry"


def fetched_folder(model_name: str, found: Any) -> Path:
    """The MLflow model folder of a registered version (`found`, an MLflow ModelVersion), in
    one cache folder per store, name and version. Downloaded where missing, or again where
    the version changed since (its tags: `export-onnx` adds copies to a registered version):
    into a temporary folder first, renamed into place, so a reader never sees half a model and
    two processes fetching at once keep one copy."""
    import mlflow

    where = f"{tracking_uri()}\n{mlflow.get_registry_uri()}"
    store = hashlib.sha256(where.encode()).hexdigest()[:16]
    folder = registry_cache() / store / model_name / str(found.version)
    stamp = json.dumps(
        {
            "created": found.creation_timestamp,
            "source": str(found.source or ""),
            "tags": dict(sorted((found.tags or {}).items())),
        }
    )
    marker = folder / FETCHED_STAMP
    if marker.is_file() and marker.read_text() == stamp:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        mlflow.artifacts.download_artifacts(
            f"models:/{model_name}/{found.version}", dst_path=str(incoming)
        )
        (incoming / FETCHED_STAMP).write_text(stamp)
        if folder.exists():  # an older state of the version: out of the way, then gone
            stale = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.stale."))
            os.replace(folder, stale / folder.name)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(incoming, folder)
        except OSError:  # another process put the same version in place meanwhile
            if not (marker.is_file() and marker.read_text() == stamp):
                raise
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    return folder


def version_metrics(model_name: str, version: str) -> dict[str, float]:
    """The metrics of the run that registered a version (held-out agreement among them);
    MlflowException where there is no such version."""
    from mlflow.tracking import MlflowClient

    configure_tracking()
    client = MlflowClient()
    run_id = str(client.get_model_version(model_name, version).run_id)
    return dict(client.get_run(run_id).data.metrics)


def store_onnx_copies(model_name: str, version: str, folder: Path) -> None:
    """Store the ONNX copies in `folder` as artifacts of an already registered version, and
    tag the version with each copy's verdict."""
    from mlflow.tracking import MlflowClient

    from prescore.models.onnx_copies import read_copies

    copies = read_copies(folder)
    if copies is None:
        raise FileNotFoundError(f"{folder} holds no ONNX copies' check")
    client = MlflowClient()
    model_version = client.get_model_version(model_name, version)
    # MLflow 3 registers a logged model: its id, or the source `models:/<id>` naming it
    source = str(model_version.source or "")
    model_id = model_version.model_id or (
        source.removeprefix("models:/") if "/m-" in source else ""
    )
    if not model_id:
        raise LookupError(
            f"{model_name} version {version} was not registered from a logged model "
            f"(source {source}); retrain it to give it ONNX copies"
        )
    client.log_model_artifacts(model_id, str(folder), f"artifacts/{ONNX_ARTIFACT}")
    tag_onnx_copies(model_name, version, copies)


def tag_onnx_copies(model_name: str, version: str, copies: OnnxCopies) -> None:
    """The version says which copies may serve and why the others may not."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for runtime, verdict in copies.summary().items():
        client.set_model_version_tag(model_name, version, f"prescore.{runtime}", verdict)


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
    reasons: list[str]  # every refusal that applied, or every way the candidate is better


def list_versions(model_name: str) -> list[VersionSummary]:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        # search results leave aliases out; the registered model holds them
        aliases = client.get_registered_model(model_name).aliases
        versions = client.search_model_versions(f"name='{model_name}'")
    except MlflowException:
        return []
    summaries = (_summary(client, v, aliases) for v in versions)
    return sorted(summaries, key=lambda s: int(s.version))


def _summary(client: Any, version: Any, aliases: dict[str, str]) -> VersionSummary:
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
    """Point `champion` at `version` (default: the newest) only if it beats the champion, by
    the rule in models/promotion.py: qualified wherever the champion was, no smaller auto
    share beyond sampling noise, no more false awards, and better on at least one of those or
    `metric`.

    Both must have been measured on the same held-out evidence (equal test fingerprints);
    otherwise their numbers are not comparable and nothing moves.
    """
    from mlflow.tracking import MlflowClient

    from prescore.models.promotion import judge

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
        return Promotion(True, candidate, None, ["there was no champion"])
    if champion.version == candidate.version:
        return Promotion(False, candidate, champion, ["it already is the champion"])
    if champion.test_fingerprint != candidate.test_fingerprint:
        return Promotion(
            False,
            candidate,
            champion,
            [
                "the two were tested on different held-out evidence, so their scores don't "
                "compare; retrain the champion's config on the same data first"
            ],
        )
    better, reasons = judge(candidate.metrics, champion.metrics, metric)
    if better:
        move()
    return Promotion(better, candidate, champion, reasons)


@dataclass(frozen=True)
class TrainingRun:
    """A training run that recorded whose evidence it used, with the versions it registered."""

    run_id: str
    versions: list[tuple[str, str]]  # (registered model, version)


@dataclass(frozen=True)
class Lineage:
    """The runs that used one educator's evidence, and those that cannot tell: hashed under
    another salt, or their record could not be read."""

    trained_on: list[TrainingRun]
    unknown: list[TrainingRun]


def trained_on(educator_id: str, salt: str | None) -> Lineage:
    """Every run in the configured store whose educator record holds this educator's salted
    hash; runs of every experiment, deleted ones too (their versions may still serve)."""
    import mlflow
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from prescore.data.owners import (
        EDUCATORS_ARTIFACT,
        EDUCATORS_TAG,
        EducatorRecord,
        educator_hash,
        salt_check,
    )

    configure_tracking()
    client = MlflowClient()
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{EDUCATORS_TAG}` LIKE '%'",
        run_view_type=ViewType.ALL,
        output_format="list",
    )
    matched, unknown = [], []
    for run in runs:
        run_id = run.info.run_id
        versions = [
            (str(v.name), str(v.version))
            for v in client.search_model_versions(f"run_id = '{run_id}'")
        ]
        found = TrainingRun(run_id, sorted(versions))
        try:
            record = EducatorRecord.model_validate(
                mlflow.artifacts.load_dict(f"runs:/{run_id}/{EDUCATORS_ARTIFACT}")
            )
        except (MlflowException, OSError, ValueError):
            unknown.append(found)
            continue
        if salt is None or record.salt_check != salt_check(salt):
            unknown.append(found)
        elif educator_hash(educator_id, salt) in record.educators:
            matched.append(found)
    # versions trained before runs kept a record (or whose run lost it) cannot be cleared
    recorded = {run.info.run_id for run in runs}
    unrecorded: dict[str, list[tuple[str, str]]] = {}
    for version in client.search_model_versions():
        if version.run_id and version.run_id not in recorded:
            unrecorded.setdefault(version.run_id, []).append(
                (str(version.name), str(version.version))
            )
    unknown += [TrainingRun(run_id, sorted(v)) for run_id, v in sorted(unrecorded.items())]
    return Lineage(matched, unknown)
