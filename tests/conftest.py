"""Small evidence fixtures written by the tests themselves; the shared data sets are never read."""

from __future__ import annotations

import csv
import gc
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.postgres import PostgresServer

if TYPE_CHECKING:
    from tests.serving.conftest import Registry

RUBRIC = {
    "id": "wait-time",
    "title": "Using wait time effectively",
    "stakes": "low",
    "criteria": [
        {
            "id": "planning",
            "title": "Plans pauses after questions",
            "levels": [
                {"value": 1, "label": "Not yet"},
                {"value": 2, "label": "Developing"},
                {"value": 3, "label": "Proficient"},
            ],
            "met_level": "Proficient",
        },
        {
            "id": "reflection",
            "title": "Reflects on the effect",
            "levels": [0, 1, 2, 3],
            "met_level": "2",
        },
    ],
}
COLUMNS = [
    "id",
    "educator_id",
    "credential_id",
    "criterion_id",
    "evidence_type",
    "text",
    "consent_to_train",
    "final_level",
    "rater1_id",
    "rater1_kind",
    "rater1_level",
    "rater2_id",
    "rater2_kind",
    "rater2_level",
    "group_gender",
]


def evidence_row(n: int, **overrides: Any) -> dict[str, Any]:
    """A valid record; educator e{n//2} wrote two items, one per criterion."""
    criterion = "planning" if n % 2 == 0 else "reflection"
    level = (
        ["Not yet", "Developing", "Proficient"][n % 3] if criterion == "planning" else str(n % 4)
    )
    row = {
        "id": f"item-{n}",
        "educator_id": f"e{n // 2}",
        "credential_id": "wait-time",
        "criterion_id": criterion,
        "evidence_type": "reflection",
        "text": f"Evidence number {n}: I waited {n} seconds and {n % 5} students answered.",
        "consent_to_train": "yes",
        "final_level": level,
        "rater1_id": "r1",
        "rater1_kind": "expert",
        "rater1_level": level,
        "rater2_id": "r2",
        "rater2_kind": "peer",
        "rater2_level": level,
        "group_gender": "f" if n % 2 else "m",
    }
    row.update(overrides)
    return row


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def rubric_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rubrics"
    folder.mkdir()
    (folder / "wait-time.yaml").write_text(yaml.safe_dump(RUBRIC), encoding="utf-8")
    return folder


@pytest.fixture
def good_csv(tmp_path: Path, rubric_dir: Path) -> Path:
    return write_csv(tmp_path / "evidence.csv", [evidence_row(n) for n in range(60)])


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer, 32-wide BERT built from a config with random weights: fast, no download.

    The tokenizer is the bundled all-MiniLM-L6-v2 one, so the text pipeline is the real one.
    """
    from transformers import AutoTokenizer, BertConfig, BertModel

    from prescore.models.base_model import bundled_base_model

    folder = tmp_path_factory.mktemp("tiny-encoder")
    tokenizer = AutoTokenizer.from_pretrained(bundled_base_model())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    import torch

    torch.manual_seed(0)  # the same weights whichever test builds it first
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "",'
        ' "type": "sentence_transformers.models.Transformer"},'
        ' {"idx": 1, "name": "1", "path": "1_Pooling",'
        ' "type": "sentence_transformers.models.Pooling"}]'
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        '{"word_embedding_dimension": 32, "pooling_mode_mean_tokens": true}'
    )
    return folder


def scoring_frame(n: int, seed: int = 0) -> tuple[Any, Any]:
    """Items on two criteria (3 and 5 levels) whose level follows the words used: learnable."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    words = ["rarely", "sometimes", "often", "usually", "always"]
    rows, labels = [], []
    for i in range(n):
        criterion, levels = ("planning", 3) if i % 2 else ("reflection", 5)
        level = int(rng.integers(levels))
        cue = words[round(level * 4 / (levels - 1))]
        filler = " ".join(rng.choice(["students", "wait", "question", "pause", "think"], size=8))
        rows.append(
            {
                "text": f"I {cue} wait after questions; {filler}. " * (1 + i % 3),
                "credential_id": "wait-time",
                "criterion_id": criterion,
                "num_levels": levels,
            }
        )
        labels.append(level)
    return pd.DataFrame(rows), np.array(labels)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`browser` and `postgres` follow from the fixtures a test uses, so a new test cannot
    forget them; `slow` is set by the modules that start a service (pyproject.toml)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "browser" in fixtures:
            item.add_marker(pytest.mark.browser)
        if "postgres" in fixtures or params.get("review_db") == "postgres":
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway Postgres server for the session, started only by tests that ask for it."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(params=["sqlite", "postgres"])
def review_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The review queue's URL, once a SQLite file and once an empty Postgres database: the
    queue must behave alike on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'review.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database(f"queue_{secrets.token_hex(6)}")


@pytest.fixture(scope="session", autouse=True)
def educator_salt_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Training creates the educator salt where PRESCORE_EDUCATOR_SALT_FILE points: a
    session folder, so no test writes .prescore/ into the checkout, and every run of the
    session hashes with one salt, as an operator's do."""
    path = tmp_path_factory.mktemp("salt") / "educator-salt"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRESCORE_EDUCATOR_SALT_FILE", str(path))
        patch.delenv("PRESCORE_EDUCATOR_SALT", raising=False)
        yield path


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or fills the machine's cache (an assembled MPNet there would hide a
    missing extra)."""
    monkeypatch.setenv("PRESCORE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def collector_back() -> Iterator[None]:
    """A serving host exempts the whole heap from the cyclic collector (gc.freeze); give it
    back after each test, or the suite's cyclic garbage would stay to its end."""
    yield
    gc.unfreeze()


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A local MLflow store of the test's own, as the tracking URI."""
    from prescore.models.registry import configure_tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    configure_tracking()
    return uri


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Two versions of one model, champion = 1, shared by the serving and review tests (a
    test that moves the alias puts it back)."""
    from tests.serving.conftest import register_versions

    return register_versions(tmp_path_factory.mktemp("registry"), [1.0, 0.01])
