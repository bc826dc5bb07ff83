"""Every command names a model version the same way."""

from __future__ import annotations

import pytest

from prescore.models.model_ref import BadModelReference, ModelRef, parse_model_ref


def test_name_alias_and_version_read_as_mlflow_names_them() -> None:
    assert parse_model_ref("prescore-quickstart@champion") == ModelRef(
        "prescore-quickstart", "champion"
    )
    three = parse_model_ref("reflect@3")
    assert three.is_version and three.uri == "models:/reflect/3" and str(three) == "reflect@3"
    bare = parse_model_ref("reflect")
    assert bare.reference is None and bare.or_alias().uri == "models:/reflect@champion"
    assert parse_model_ref("reflect@challenger").uri == "models:/reflect@challenger"


@pytest.mark.parametrize("text", ["", "@champion", "reflect@", "reflect@a@b", "re flect@1"])
def test_anything_else_is_refused_showing_the_form(text: str) -> None:
    with pytest.raises(BadModelReference, match="NAME@ALIAS or NAME@VERSION"):
        parse_model_ref(text)
