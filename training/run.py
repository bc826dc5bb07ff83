"""One training run: load evidence, fit the configured scorer, measure it, log and register it."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from transformers import TrainerCallback

from prescore.data.load import EvidenceSet, load_evidence
from prescore.data.owners import EDUCATORS_ARTIFACT, EDUCATORS_TAG, educator_record, educator_salt
from prescore.data.rubrics import write_rubric
from prescore.data.schema import Credential, CriterionKey
from prescore.eval.report import write_report
from prescore.eval.routing import RoutingPolicy
from prescore.models.onnx_copies import COPIES, Copy, OnnxCopies, make_copies
from prescore.models.pyfunc import MODEL_CODE, signature
from prescore.models.registry import (
    ONNX_ARTIFACT,
    POLICY_ARTIFACT,
    REGISTERED_FILE,
    RUBRICS_ARTIFACT,
    SCORER_ARTIFACT,
    configure_tracking,
    fetch,
    registered_version,
    store_onnx_copies,
    tag_onnx_copies,
)
from prescore.models.scorer import Scorer
from prescore.models.transformer import TORCH_RUNTIME, TransformerScorer
from prescore.progress import StepProgress
from prescore.training.config import ExperimentConfig
from prescore.training.fit import RichProgress, build_scorer, fit_scorer, measure
from prescore.training.tracking import experiment_id

MODEL_ARTIFACT = "model"
MODEL_REQUIREMENTS = [
    "torch",
    "transformers",
    "sentence-transformers",
    "scikit-learn",
    "pandas",
    "mlflow",
    "onnxruntime",
]


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_name: str
    version: str
    metrics: dict[str, float]
    fit_seconds: float


def is_main_process() -> bool:
    """Under torchrun every process trains; only the first one logs and registers."""
    return int(os.environ.get("RANK", "0")) == 0


def fingerprint(split: pd.DataFrame) -> str:
    """A digest of ids, levels and texts: equal fingerprints mean the same evidence, same scores."""
    digest = hashlib.sha256()
    for item_id, label, text in sorted(
        zip(split["id"], split["label"], split["text"], strict=True)
    ):
        digest.update(f"{item_id}\t{label}\t".encode())
        digest.update(
            hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        )
    return digest.hexdigest()[:16]


def confusion_figure(matrices: dict[str, np.ndarray], credentials: dict[str, Credential]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(matrices))
    rows = (len(matrices) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.8 * rows), squeeze=False)
    for axis in axes.flat[len(matrices) :]:
        axis.axis("off")
    for axis, (key, matrix) in zip(axes.flat, matrices.items(), strict=False):
        credential_id, criterion_id = CriterionKey.parse(key)
        criterion = credentials[credential_id].criterion(criterion_id)
        labels = criterion.labels if criterion else [str(i) for i in range(len(matrix))]
        axis.imshow(matrix, cmap="Blues")
        axis.set_title(key, fontsize=9)
        axis.set_xlabel("model")
        axis.set_ylabel("human")
        ticks = range(len(labels))
        axis.set_xticks(ticks, labels, fontsize=6, rotation=90)
        axis.set_yticks(ticks, labels, fontsize=6)
        if len(matrix) <= 12:
            for (i, j), count in np.ndenumerate(matrix):
                if count:
                    axis.text(j, i, str(count), ha="center", va="center", fontsize=6)
    figure.tight_layout()
    return figure


class EpochLossLogger(TrainerCallback):
    """Per-epoch training and calibration loss into the active MLflow run."""

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any
    ) -> None:
        if not logs or not state.is_world_process_zero or mlflow.active_run() is None:
            return
        step = int(round(state.epoch or 0))
        for source, target in (("loss", "train_loss"), ("eval_loss", "calibration_loss")):
            if source in logs:
                mlflow.log_metric(target, float(logs[source]), step=step)


def train(
    config: ExperimentConfig, config_path: Path | None = None, evidence: EvidenceSet | None = None
) -> TrainResult | None:
    """Fit, evaluate on the held-out split, log to MLflow and register a new model version.

    `evidence` saves a second load when the caller has already loaded `config.data`.
    Returns None on the non-main processes of a distributed run.
    """
    evidence = evidence or load_evidence(config.data)
    scorer = build_scorer(config, evidence)

    main = is_main_process()
    if main:
        configure_tracking()
        run_context: Any = mlflow.start_run(experiment_id=experiment_id(config.name))
    else:
        run_context = nullcontext()
    with run_context as run:
        if main:
            _log_inputs(config, config_path, evidence.splits, scorer)
        fit_seconds = fit_scorer(
            scorer,
            evidence,
            config.evaluation.certification_share,
            callbacks=[EpochLossLogger(), RichProgress()],
        )
        if not main:
            return None
        evaluation, metrics = measure(scorer, evidence, config, fit_seconds)
        credentials = evidence.credentials
        if "world_size" in metrics:
            mlflow.log_param("world_size", int(metrics["world_size"]))
        mlflow.log_metrics({k: v for k, v in metrics.items() if not np.isnan(v)})
        if evaluation.language is not None and evaluation.language.warning:
            mlflow.set_tag("prescore.language_warning", evaluation.language.warning)
        matrices = {key: a.confusion for key, a in evaluation.agreement.items() if a.items}
        if matrices:
            import matplotlib.pyplot as plt

            figure = confusion_figure(matrices, credentials)
            mlflow.log_figure(figure, "confusion_matrices.png")
            plt.close(figure)
        with tempfile.TemporaryDirectory() as folder:
            write_report(evaluation, Path(folder), f"{config.model_name}: evaluation")
            mlflow.log_artifacts(folder, artifact_path="evaluation")
            copies = onnx_copies(scorer, config, evidence, Path(folder) / ONNX_ARTIFACT)
            version = _log_model(
                scorer, config.model_name, evaluation.policy, evidence.credentials, copies
            )
            if copies is not None:
                tag_onnx_copies(config.model_name, version, copies[1])
    return TrainResult(run.info.run_id, config.model_name, version, metrics, fit_seconds)


def _log_inputs(
    config: ExperimentConfig,
    config_path: Path | None,
    splits: dict[str, pd.DataFrame],
    scorer: Scorer,
) -> None:
    mlflow.set_tags({"prescore.config": config.name, "prescore.scorer": config.scorer.kind})
    mlflow.log_params(
        {
            "scorer": config.scorer.kind,
            "seed": config.seed,
            "data.path": str(config.data.path),
            "data.adapter": config.data.adapter or "",
            "data.split_seed": config.data.split.seed,
            # whose final levels it learns from: never a silent mix of experts' and peers'
            "data.final_level_kinds": ",".join(config.data.final_level_kinds or []) or "all",
            **scorer_params(scorer),
        }
    )
    for name, split in splits.items():
        mlflow.log_params(
            {f"data.{name}.size": len(split), f"data.{name}.fingerprint": fingerprint(split)}
        )
    if config_path is not None:
        mlflow.log_artifact(str(config_path), artifact_path="config")
    mlflow.log_dict(config.model_dump(mode="json"), "config/resolved.json")
    log_educators(splits)


def log_educators(splits: dict[str, pd.DataFrame]) -> None:
    """Whose evidence this run used (every split: the held-out ones fit the routing policy),
    as salted hashes, so `prescore forget` can list the versions trained on someone's
    evidence; never the ids themselves, never the text."""
    salt = educator_salt(create=True)
    assert salt is not None  # created where missing
    educators = [str(e) for split in splits.values() for e in split["educator_id"]]
    record = educator_record(educators, salt)
    mlflow.log_dict(record.model_dump(), EDUCATORS_ARTIFACT)
    mlflow.set_tag(EDUCATORS_TAG, str(len(record.educators)))


def scorer_params(scorer: Scorer) -> dict[str, Any]:
    """The scorer's params for MLflow, a mapping (training_args) one param per key, so that
    runs compare setting by setting."""
    out: dict[str, Any] = {}
    for name, value in scorer.get_params(deep=False).items():
        if isinstance(value, dict):
            out.update({f"scorer.{name}.{k}": v for k, v in value.items()})
        else:
            out[f"scorer.{name}"] = value
    return out


def synthetic_example(scorer: Scorer) -> pd.DataFrame:
    """An input example that is not anyone's evidence: MLflow stores it beside the model."""
    credential_id, criterion_id = CriterionKey.parse(min(scorer.num_levels_))
    text = "I paused for five seconds after each question so that more students could answer."
    return pd.DataFrame(
        [
            {
                "submission_id": "example",
                "credential_id": credential_id,
                "criterion_id": criterion_id,
                "text": text,
            }
        ]
    )


def onnx_copies(
    scorer: Scorer, config: ExperimentConfig, evidence: EvidenceSet, folder: Path
) -> tuple[Path, OnnxCopies] | None:
    """A transformer scorer's ONNX copies, checked on the calibration split; None for other
    kinds or where the config asks for none."""
    if not isinstance(scorer, TransformerScorer) or not config.onnx_copies:
        return None
    test = evidence.splits.get("test")
    wanted = tuple(config.onnx_copies)
    with StepProgress("ONNX copies: export and check", 1 + len(wanted), "step") as progress:
        copies = make_copies(
            scorer,
            folder,
            evidence.splits["calibration"],
            test if test is not None and len(test) else None,
            wanted,
            on_step=progress.advance,
        )
    return folder, copies


def _log_model(
    scorer: Scorer,
    model_name: str,
    policy: RoutingPolicy,
    rubrics: dict[str, Credential],
    copies: tuple[Path, OnnxCopies] | None = None,
) -> str:
    """Log and register the model: the scorer, the routing policy fitted beside it, the rubric
    files it was trained on and the ONNX copies travel inside it. Then the name and number it
    was registered as, beside them, so its pyfunc model says which version answered."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        saved = scorer.save(root / SCORER_ARTIFACT)
        policy_file = root / f"{POLICY_ARTIFACT}.json"
        policy_file.write_text(policy.model_dump_json(indent=2))
        for credential in rubrics.values():
            write_rubric(credential, root / RUBRICS_ARTIFACT)
        artifacts = {
            SCORER_ARTIFACT: str(saved),
            POLICY_ARTIFACT: str(policy_file),
            RUBRICS_ARTIFACT: str(root / RUBRICS_ARTIFACT),
        }
        if copies is not None:
            artifacts[ONNX_ARTIFACT] = str(copies[0])
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(MODEL_CODE),
            artifacts=artifacts,
            signature=signature(),
            input_example=synthetic_example(scorer),
            registered_model_name=model_name,
            pip_requirements=MODEL_REQUIREMENTS,
        )
        version = str(info.registered_model_version)
        names = root / "registered"
        names.mkdir()
        (names / REGISTERED_FILE).write_text(
            json.dumps({"model_name": model_name, "model_version": version})
        )
        MlflowClient().log_model_artifacts(info.model_id, str(names), "artifacts")
    return version


@dataclass(frozen=True)
class VersionEvidence:
    """A registered transformer version's PyTorch scorer and the calibration and test splits
    of the evidence it was trained on, where its copies are checked."""

    version: str
    scorer: TransformerScorer
    calibration: pd.DataFrame
    test: pd.DataFrame | None


def version_evidence(
    model_name: str, version: str, config: ExperimentConfig | None = None
) -> VersionEvidence:
    """What a registered version's copies are checked on (VersionEvidence).

    The evidence is the run's own config (logged beside it) unless `config` is given; either
    way its calibration split must have the run's fingerprint, or the check would be on other
    evidence and LookupError says so."""
    configure_tracking()
    registered = fetch(model_name, version)
    scorer = registered.scorer(TORCH_RUNTIME)
    if not isinstance(scorer, TransformerScorer):
        raise ValueError(
            f"{registered.label} is a {scorer.kind} scorer: only transformer scorers "
            "have ONNX copies"
        )
    run = MlflowClient().get_run(registered_version(model_name, version).run_id)
    if config is None:
        logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/config/resolved.json")
        config = ExperimentConfig.model_validate(logged)
    evidence = load_evidence(config.data)
    calibration = evidence.splits["calibration"]
    expected = run.data.params.get("data.calibration.fingerprint")
    if expected and fingerprint(calibration) != expected:
        raise LookupError(
            f"the calibration split of {config.data.path} is not the one {registered.label} "
            "was trained with (its fingerprint differs); pass the run's config and evidence"
        )
    test = evidence.splits.get("test")
    held_out = test if test is not None and len(test) else None
    return VersionEvidence(registered.version, scorer, calibration, held_out)


def add_onnx_copies(
    model_name: str,
    version: str,
    config: ExperimentConfig | None = None,
    copies: tuple[Copy, ...] = COPIES,
) -> OnnxCopies:
    """Give an already registered transformer version its ONNX copies, checked on the
    calibration split of the evidence it was trained on (`version_evidence`): no retraining."""
    found = version_evidence(model_name, version, config)
    with (
        tempfile.TemporaryDirectory() as folder,
        StepProgress("ONNX copies: export and check", 1 + len(copies), "step") as progress,
    ):
        checked = make_copies(
            found.scorer,
            Path(folder),
            found.calibration,
            found.test,
            copies,
            on_step=progress.advance,
        )
        store_onnx_copies(model_name, found.version, Path(folder))
    return checked
