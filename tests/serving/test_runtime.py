"""Which runtime serves a transformer version: its fastest ONNX copy that passed the check at
export, PyTorch when forced or when the version has no copies (registered before them)."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from prescore.cli import app
from prescore.models import onnx_copies
from prescore.models.onnx_copies import BF16, ONNX_FP32, ONNX_INT8
from prescore.models.registry import configure_tracking, fetch
from prescore.models.row_attention import ROWS
from prescore.models.transformer import TORCH_RUNTIME, TransformerScorer
from prescore.serving.model_host import ModelHost
from prescore.serving.schemas import EvidenceToScore
from prescore.serving.scoring import ScoringModel
from prescore.serving.settings import ServiceSettings
from tests.conftest import evidence_row
from tests.serving.conftest import write_named_evidence

pytestmark = pytest.mark.slow  # registers transformer versions with their ONNX copies

MODEL = "prescore-onnx"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path) -> str:
    """Version 1 registered with its copies; version 2 without (as before they existed)."""
    from prescore.training.config import load_config
    from prescore.training.run import train

    folder = tmp_path_factory.mktemp("onnx-registry")
    write_named_evidence(folder, 160, mentions=2)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    scorer = {
        "kind": "transformer",
        "params": {
            "base_model": str(tiny_encoder),
            "max_length": 32,
            "stride": 8,
            "training_args": {
                "num_train_epochs": 2,
                "per_device_train_batch_size": 16,
                "learning_rate": 1e-2,
            },
            "head_learning_rate": 0.3,
        },
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        configure_tracking()
        for n, copies in enumerate([["onnx-fp32", "onnx-int8", "torch-bf16"], []]):
            config = folder / f"onnx-{n}.yaml"
            spec = {
                "name": "onnx",
                "data": {"path": "evidence.csv"},
                "scorer": scorer,
                "onnx_copies": copies,
            }
            config.write_text(yaml.safe_dump(spec))
            train(load_config(config), config)
    return uri


@pytest.fixture
def tracking(registry: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
    configure_tracking()
    return registry


def items() -> list[EvidenceToScore]:
    return [
        EvidenceToScore(
            submission_id=f"s{n}",
            credential_id="wait-time",
            criterion_id=evidence_row(n)["criterion_id"],
            evidence_type="reflection",
            text=evidence_row(n)["text"],
        )
        for n in range(6)
    ]


def test_serving_picks_the_fastest_copy_that_passed(tracking: str) -> None:
    registered = fetch(MODEL, "1")
    copies = registered.onnx_copies()
    assert copies is not None and copies.copies[ONNX_FP32].passed
    expected = copies.usable()[0]  # the fastest as the check timed it here, give or take
    timed = [copies.items_per_s(runtime) or 0.0 for runtime in copies.usable()]
    fastest = (copies.items_per_s(expected) or 0.0) * (1 + onnx_copies.SPEED_MARGIN)
    assert fastest >= max(timed)  # the margin (a tiny model: often PyTorch itself)
    model = ScoringModel.from_registered(registered)
    assert model.runtime == expected and model.card().runtime == expected
    assert {s.runtime for s in model.score(items())} == {expected}
    # the version says what each copy's check found
    tags = MlflowClient().get_model_version(MODEL, "1").tags
    assert tags[f"prescore.{ONNX_FP32}"].startswith("passed: level agreement 100.00%")
    assert tags[f"prescore.{ONNX_INT8}"].startswith(
        "passed" if copies.copies[ONNX_INT8].passed else "not used: moves the suggested level"
    )


def test_bf16_serves_on_the_attention_its_check_ran_on(tracking: str) -> None:
    copies = fetch(MODEL, "1").onnx_copies()
    assert copies is not None and copies.attention(BF16) == ROWS
    scorer = ScoringModel.from_registry(MODEL, "1", BF16).scorer
    assert isinstance(scorer, TransformerScorer) and scorer.attention_ == ROWS


def test_pytorch_serves_when_forced_and_agrees_with_the_fp32_copy(tracking: str) -> None:
    forced = ScoringModel.from_registry(MODEL, "1", TORCH_RUNTIME)
    assert forced.runtime == TORCH_RUNTIME and forced.card().runtime == TORCH_RUNTIME
    assert isinstance(forced.scorer, TransformerScorer) and forced.scorer.graph_ is not None
    copy = ScoringModel.from_registry(MODEL, "1", ONNX_FP32)
    assert isinstance(copy.scorer, TransformerScorer) and copy.scorer.model_.encoder is None
    for a, b in zip(forced.score(items()), copy.score(items()), strict=True):
        assert a.level == b.level and a.runtime == TORCH_RUNTIME and b.runtime == ONNX_FP32
        for p, q in zip(a.probabilities, b.probabilities, strict=True):
            assert p.probability == pytest.approx(q.probability, abs=1e-4)


def test_the_runtime_setting_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESCORE_ALLOW_ANONYMOUS", "1")
    assert ServiceSettings.from_environment().runtime == "auto"
    monkeypatch.setenv("PRESCORE_RUNTIME", "torch-fp32")
    assert ServiceSettings.from_environment().runtime == TORCH_RUNTIME
    monkeypatch.setenv("PRESCORE_RUNTIME", "tensorrt")
    with pytest.raises(ValueError, match="runtime"):
        ServiceSettings.from_environment()


def test_where_the_model_runs_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESCORE_ALLOW_ANONYMOUS", "1")
    assert ServiceSettings.from_environment().model_process == "inline"
    monkeypatch.setenv("PRESCORE_MODEL_PROCESS", "separate")
    assert ServiceSettings.from_environment().model_process == "separate"
    monkeypatch.setenv("PRESCORE_MODEL_PROCESS", "elsewhere")
    with pytest.raises(ValueError, match="model_process"):
        ServiceSettings.from_environment()


def test_a_version_without_copies_serves_pytorch_until_export_onnx_adds_them(
    tracking: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = ScoringModel.from_registry(MODEL, "2")
    assert fetch(MODEL, "2").onnx_copies() is None
    assert old.runtime == TORCH_RUNTIME and old.score(items())[0].runtime == TORCH_RUNTIME
    with pytest.raises(ValueError, match="prescore export-onnx --model prescore-onnx@2"):
        ScoringModel.from_registry(MODEL, "2", ONNX_FP32)

    # an int8 copy that moves levels (its encoder is another model's) is stored, not served
    def wrong_quantize(fp32: Path, int8: Path) -> Path:
        scorer = fetch(MODEL, "2").scorer(TORCH_RUNTIME)
        assert isinstance(scorer, TransformerScorer)
        with torch.no_grad():
            generator = torch.Generator().manual_seed(0)
            for parameter in scorer.model_.encoder.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
        return onnx_copies.export_encoder(scorer, int8)

    monkeypatch.setattr(onnx_copies, "quantize", wrong_quantize)
    result = CliRunner().invoke(
        app, ["export-onnx", "--model", f"{MODEL}@2"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "not used: moves the suggested level" in result.output

    monkeypatch.setattr(onnx_copies, "native_bf16", lambda: False)  # the ONNX copies alone
    registered = fetch(MODEL, "2")
    copies = registered.onnx_copies()
    assert copies is not None and sorted(copies.usable()) == [ONNX_FP32, TORCH_RUNTIME]
    served = ScoringModel.from_registered(registered).runtime
    timed = {runtime: copies.items_per_s(runtime) or 0.0 for runtime in copies.usable()}
    assert served in timed and timed[served] * (1 + onnx_copies.SPEED_MARGIN) >= max(timed.values())
    reason = MlflowClient().get_model_version(MODEL, "2").tags[f"prescore.{ONNX_INT8}"]
    assert reason.startswith("not used: moves the suggested level")
    with pytest.raises(ValueError, match="copy is not used: moves the suggested level"):
        ScoringModel.from_registry(MODEL, "2", ONNX_INT8)


def test_bench_serving_times_every_runtime_on_the_same_items(tracking: str) -> None:
    from bench.serving import bench_serving

    distinct = items()
    shared = [[*distinct[:2]]]
    result = bench_serving(MODEL, "1", distinct, shared, http=False)
    report = result.as_json()
    assert set(report) == {"runtimes", "http", "rss_mb"} and report["http"] is None
    assert list(report["runtimes"]) == [TORCH_RUNTIME, BF16, ONNX_FP32, ONNX_INT8]
    for figures in report["runtimes"].values():
        assert set(figures) == {
            "p50_ms", "p95_ms", "items_per_s_8", "items_per_s_32", "level_agreement"
        }  # fmt: skip
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] and figures["items_per_s_8"] > 0
    assert report["runtimes"][TORCH_RUNTIME]["level_agreement"] == 1.0
    assert report["runtimes"][ONNX_FP32]["level_agreement"] == 1.0
    assert "Shared-text batches (2 items" in result.markdown()


def test_the_model_is_loaded_on_a_thread_that_ends_with_the_load(
    tracking: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread that ran PyTorch keeps its OpenMP team while it lives; one left on the serving
    process's main thread slowed bf16 scoring on the model's thread by half (issue 15)."""
    loaders: list[threading.Thread] = []
    load = ScoringModel.from_registry

    def recording(*arguments: str) -> ScoringModel:
        loaders.append(threading.current_thread())
        return load(*arguments)

    monkeypatch.setattr(ScoringModel, "from_registry", recording)
    host = ModelHost(ServiceSettings(model_name=MODEL, model_alias="1", runtime="torch-fp32"))
    assert host.reload().refusal is None
    assert len(loaders) == 2
    assert all(t is not threading.current_thread() and not t.is_alive() for t in loaders)


def test_the_loaded_model_is_out_of_the_collectors_reach_and_holds_no_cycle(
    tracking: str,
) -> None:
    """A full cyclic collection walking the loaded model stalled every request for 388 ms
    (issue 15): the host exempts what is loaded. The collector then never frees it, so a
    model must be freed by refcounting alone when a reload replaces it: it holds no cycle."""
    gc.unfreeze()
    ModelHost(ServiceSettings(model_name=MODEL, model_alias="1", runtime="torch-fp32"))
    assert gc.get_freeze_count() > 0
    for runtime in (TORCH_RUNTIME, BF16, ONNX_FP32):
        model = ScoringModel.from_registry(MODEL, "1", runtime)
        model.score(items())
        scorer = model.scorer
        assert isinstance(scorer, TransformerScorer)
        alive = [weakref.ref(o) for o in (model, scorer, scorer.model_, scorer.tokenizer_)]
        gc.collect()  # as after every load: torch.jit.trace leaves a cycle holding the model
        gc.disable()  # refcounting alone from here
        try:
            del model, scorer
            assert [ref() for ref in alive] == [None] * len(alive), runtime
        finally:
            gc.enable()
