import pytest
from pydantic import ValidationError

from prescore.data.schema import Credential, Criterion, Level
from tests.conftest import RUBRIC


def test_rubric_parses_levels_given_as_objects_or_plain_numbers() -> None:
    credential = Credential.model_validate(RUBRIC)
    planning, reflection = credential.criteria
    assert planning.labels == ["Not yet", "Developing", "Proficient"]
    assert planning.met_index == 2
    assert reflection.labels == ["0", "1", "2", "3"]
    assert reflection.values == [0.0, 1.0, 2.0, 3.0]


def test_level_index_accepts_label_or_value_and_rejects_the_rest() -> None:
    planning = Credential.model_validate(RUBRIC).criteria[0]
    assert planning.level_index("Developing") == 1
    assert planning.level_index(3) == 2
    assert planning.level_index("3.0") == 2
    assert planning.level_index("Expert") is None
    assert planning.level_index(4) is None
    assert planning.level_index(None) is None
    assert planning.level_index(True) is None


def test_levels_must_increase_and_be_unique() -> None:
    with pytest.raises(ValidationError, match="must increase"):
        Criterion(
            id="c",
            title="c",
            levels=(Level(value=2, label="b"), Level(value=1, label="a")),
            met_level="a",
        )
    with pytest.raises(ValidationError, match="unique"):
        Criterion(
            id="c",
            title="c",
            levels=(Level(value=1, label="a"), Level(value=2, label="a")),
            met_level="a",
        )


def test_met_level_must_be_a_level() -> None:
    with pytest.raises(ValidationError, match="met_level"):
        Criterion(id="c", title="c", levels=(1, 2), met_level="3")  # type: ignore[arg-type]


def test_stakes_and_unique_criteria_are_enforced() -> None:
    with pytest.raises(ValidationError, match="stakes"):
        Credential.model_validate({**RUBRIC, "stakes": "medium"})
    twice = {**RUBRIC, "criteria": [RUBRIC["criteria"][0], RUBRIC["criteria"][0]]}
    with pytest.raises(ValidationError, match="unique"):
        Credential.model_validate(twice)
