"""One way to name a registered model version on every command: `NAME@ALIAS` or
`NAME@VERSION`, as MLflow's own `models:/NAME@ALIAS` and `models:/NAME/VERSION` URIs do.
`NAME` alone means its champion (or, where a command says so, its newest version)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prescore import defaults

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
FORMAT = "NAME@ALIAS or NAME@VERSION, e.g. prescore-quickstart@champion or prescore-quickstart@3"
DEFAULT = f"{defaults.MODEL_NAME}@{defaults.MODEL_ALIAS}"


class BadModelReference(ValueError):
    """A reference that names no version the way the commands read them."""


@dataclass(frozen=True)
class ModelRef:
    name: str
    reference: str | None  # an alias, or a version number as digits; None: the command's default

    @property
    def is_version(self) -> bool:
        return self.reference is not None and self.reference.isdigit()

    def or_alias(self, alias: str = defaults.MODEL_ALIAS) -> ModelRef:
        """The same model at `alias` where no alias or version was named."""
        return self if self.reference is not None else ModelRef(self.name, alias)

    @property
    def uri(self) -> str:
        """MLflow's URI for it: models:/NAME/VERSION or models:/NAME@ALIAS."""
        if self.reference is None:
            return f"models:/{self.name}"
        sep = "/" if self.is_version else "@"
        return f"models:/{self.name}{sep}{self.reference}"

    def __str__(self) -> str:
        return self.name if self.reference is None else f"{self.name}@{self.reference}"


def parse_model_ref(text: str) -> ModelRef:
    """`NAME`, `NAME@ALIAS` or `NAME@VERSION`, or an error that shows the form."""
    name, at, reference = text.strip().partition("@")
    if not NAME.fullmatch(name) or (at and not NAME.fullmatch(reference)):
        raise BadModelReference(f"{text!r} is not a model version: write {FORMAT}")
    return ModelRef(name, reference or None)
