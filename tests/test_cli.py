"""The `prescore` command as a user meets it: help, the main job, configs, convert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prescore.cli import app
from prescore.data.problems import InputError
from prescore.training.config import load_config

runner = CliRunner()
WIDE = {"COLUMNS": "250"}
EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"], env=WIDE)
    assert result.exit_code == 0
    assert "quickstart" in result.output and "data" in result.output


@pytest.mark.slow
def test_quickstart_checks_trains_registers_and_promotes_on_the_bundled_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main job's whole flow, with the TF-IDF config so it takes seconds, not minutes."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    quick = load_config(EXPERIMENTS / "quickstart.yaml")
    config = EXPERIMENTS / "quickstart-tfidf.yaml"
    assert load_config(config).data == quick.data  # same evidence as the real main job
    result = runner.invoke(app, ["quickstart", "--config", str(config), "--no-serve"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "2,400 valid records" in result.output  # 400 essays x 6 criteria
    for criterion in ("cohesion", "syntax", "vocabulary", "phraseology", "grammar", "conventions"):
        assert f"ell-writing.{criterion}" in result.output
    assert "prescore-quickstart version 1 promoted to champion" in result.output


class FinishedService:
    """Stands in for the `bentoml serve` process: already exited, exit status 0."""

    def poll(self) -> int:
        return 0

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def terminate(self) -> None:
        pass


@pytest.mark.slow
def test_quickstart_ends_by_serving_the_champion_with_held_out_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prescore.serving.launch as launch
    from prescore import serving_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("PRESCORE_API_KEYS", raising=False)
    started: dict[str, str] = {}

    def start(settings: dict[str, str], host: str, port: int, **_: object) -> FinishedService:
        started.update(settings, host=host, port=str(port))
        return FinishedService()

    monkeypatch.setattr(launch, "start_service", start)
    monkeypatch.setattr(launch, "wait_until_ready", lambda *_: True)
    criteria = ["cohesion", "syntax"]
    monkeypatch.setattr(serving_cli, "first_credential", lambda *_: ("ell-writing", criteria))
    config = EXPERIMENTS / "quickstart-tfidf.yaml"
    result = runner.invoke(app, ["quickstart", "--config", str(config)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert all(isinstance(value, str) for value in started.values()), started
    assert started["PRESCORE_MODEL"] == "prescore-quickstart"
    assert started["PRESCORE_MODEL_ALIAS"] == "champion" and started["port"] == "3000"
    key_file = tmp_path / ".prescore" / "api-key"
    assert started["PRESCORE_API_KEYS_FILE"] == str(key_file.resolve())
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert key_file.read_text().strip() not in result.output  # the key is never printed
    assert "Ready." in result.output and "curl -s http://127.0.0.1:3000/score" in result.output
    assert f"$(cat {key_file.resolve()})" in result.output
    # the TF-IDF model certifies no auto decision on the sample: it says so, with the policy's
    # reason, and shows a held-out submission sent to a reviewer
    flat = " ".join(result.output.split())
    assert "No held-out submission of this sample is decided automatically" in flat
    assert "route human" in flat and "route auto" not in flat
    body_file = tmp_path / ".prescore" / "demo" / "human.json"
    assert f"-d @{body_file.resolve()}" in flat
    assert oct(body_file.stat().st_mode & 0o777) == "0o600"  # it holds evidence text
    body = json.loads(body_file.read_text())
    assert len(body["items"]) == 6 and len({i["submission_id"] for i in body["items"]}) == 1
    # and how to see the reviewer's decision come back (the third step)
    (submission,) = {i["submission_id"] for i in body["items"]}
    assert f"curl -s 'http://127.0.0.1:3000/submissions/{submission}?credential_id=" in flat


def test_the_quickstart_config_is_the_default_and_fine_tunes_the_bundled_encoder() -> None:
    import typer.main

    command = typer.main.get_command(app).commands["quickstart"]  # type: ignore[attr-defined]
    (option,) = [p for p in command.params if p.name == "config"]
    default = Path(str(option.default))
    assert default.resolve() == (EXPERIMENTS / "quickstart.yaml").resolve()
    config = load_config(default)
    assert config.scorer.kind == "transformer"
    assert config.scorer.params["base_model"] == "bundled"


def test_config_paths_are_read_from_the_config_folder(tmp_path: Path, good_csv: Path) -> None:
    folder = tmp_path / "experiments"
    folder.mkdir()
    config = folder / "x.yaml"
    config.write_text("name: x\ndata:\n  path: ../evidence.csv\n  split: {seed: 5}\n")
    loaded = load_config(config)
    assert loaded.data.path == good_csv.resolve()
    assert loaded.data.split.seed == 5


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("name: x\ndata: {path: a.csv}\nepochs: 3\n", "epochs", "unknown field"),
        ("name: x\ndata: {path: a.csv, split: {train: 0.9}}\n", "data.split", "add up to 1"),
        ("name: x\n", "data", "Field required"),
        ("- a list\n", None, "YAML mapping"),
    ],
)
def test_bad_configs_get_one_clear_message(
    tmp_path: Path, text: str, field: str | None, message: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(InputError) as caught:
        load_config(config)
    problem = caught.value.problems[0]
    assert problem.field == field and message in problem.message
    result = runner.invoke(app, ["quickstart", "--config", str(config), "--no-serve"], env=WIDE)
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_convert_writes_evidence_and_rubrics_that_check_cleanly(tmp_path: Path) -> None:
    source = tmp_path / "train.csv"
    source.write_text(
        "text_id,full_text,cohesion,syntax,vocabulary,phraseology,grammar,conventions\n"
        'A1,"School should start later.",3.5,3.5,3.0,3.0,4.0,3.0\n'
    )
    out = tmp_path / "converted"
    result = runner.invoke(
        app, ["data", "convert", "feedback-prize-ell", str(source), "--out", str(out)], env=WIDE
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "evidence.jsonl").read_text().splitlines()]
    assert len(records) == 6 and (out / "rubrics" / "ell-writing.yaml").is_file()
    check = runner.invoke(app, ["data", "check", str(out / "evidence.jsonl")], env=WIDE)
    assert check.exit_code == 0, check.output
    assert "6 valid records" in check.output


@pytest.mark.parametrize("config", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_is_valid(
    config: Path, tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prescore.models import base_model

    # the mpnet extra (470 MB) is not installed for tests: its assembled folder stands in
    monkeypatch.setattr(base_model, "mpnet_base_model", lambda: tiny_encoder)
    loaded = load_config(config)
    assert loaded.data.path.is_absolute()
    assert loaded.scorer.kind in ("tfidf", "essay", "embeddings", "transformer", "ensemble")
