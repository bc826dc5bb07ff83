"""Read credential rubrics: one YAML or JSON file per credential, or a folder of them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from prescore.data.problems import InputError, Problem
from prescore.data.schema import Credential

RUBRIC_SUFFIXES = (".yaml", ".yml", ".json")


def load_rubrics(path: Path) -> dict[str, Credential]:
    """All credentials under `path` (a rubric file or a folder of them), keyed by id."""
    if not path.exists():
        raise InputError([Problem(str(path), None, None, "rubric path does not exist")])
    files = (
        sorted(p for p in path.iterdir() if p.suffix.lower() in RUBRIC_SUFFIXES)
        if path.is_dir()
        else [path]
    )
    if not files:
        message = f"no rubric files ({', '.join(RUBRIC_SUFFIXES)}) in this folder"
        raise InputError([Problem(str(path), None, None, message)])

    credentials: dict[str, Credential] = {}
    problems: list[Problem] = []
    for file in files:
        try:
            credential = read_rubric(file)
        except InputError as error:
            problems.extend(error.problems)
            continue
        if credential.id in credentials:
            problems.append(
                Problem(str(file), None, "id", f"credential {credential.id!r} is defined twice")
            )
        credentials[credential.id] = credential
    if problems:
        raise InputError(problems)
    return credentials


def read_rubric(file: Path) -> Credential:
    try:
        text = file.read_text(encoding="utf-8")
        raw = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise InputError([Problem(str(file), None, None, f"cannot read rubric: {error}")]) from None
    try:
        return Credential.model_validate(raw)
    except ValidationError as error:
        errors = error.errors()
        raise InputError(
            [
                Problem(
                    str(file),
                    None,
                    ".".join(map(str, e["loc"])) or None,
                    str(e["msg"]).removeprefix("Value error, "),
                )
                for e in errors
                if not _follows_from_its_items(e, errors)
            ]
        ) from None


def _follows_from_its_items(error: ErrorDetails, errors: list[ErrorDetails]) -> bool:
    """A list "too short" only because its items failed: the items' errors say why."""
    loc = error["loc"]
    return error["type"] == "too_short" and any(
        len(other["loc"]) > len(loc) and other["loc"][: len(loc)] == loc for other in errors
    )


def write_rubric(credential: Credential, folder: Path) -> Path:
    """Write a credential as YAML (atomically) so engineers can read and edit it."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{credential.id}.yaml"
    temporary = target.with_suffix(".yaml.tmp")
    temporary.write_text(
        yaml.safe_dump(credential.model_dump(mode="json"), sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    temporary.replace(target)
    return target
