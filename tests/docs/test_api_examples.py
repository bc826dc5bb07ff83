"""docs/api.md's bodies are the API's: each one parses under the schema the service uses."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel

from prescore.serving.schemas import (
    ErrorResponse,
    ScoreRequest,
    ScoreResponse,
    SubmissionOutcome,
)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SCHEMAS: dict[str, type[BaseModel]] = {
    "request": ScoreRequest,
    "response": ScoreResponse,
    "error": ErrorResponse,
    "submission": SubmissionOutcome,  # GET /submissions/{id}, and every webhook's data
}


def test_every_body_on_the_api_page_is_valid_and_round_trips() -> None:
    blocks = re.findall(r"```json (\w+)\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    assert {kind for kind, _ in blocks} == set(SCHEMAS)
    for kind, body in blocks:
        data = json.loads(body)
        parsed = SCHEMAS[kind].model_validate(data)
        assert json.loads(parsed.model_dump_json(exclude_unset=True)) == data, kind  # as shown
