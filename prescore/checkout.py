"""The benchmarks of a checkout, for `prescore bench`: they sit in the repo's bench/, beside
the stages but outside the installed package (bench/__init__.py says why), so an installed
wheel has a `bench` group that says where to get them."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import typer

CHECKOUT = Path(__file__).resolve().parent.parent
NO_CHECKOUT = (
    "the benchmarks run from a checkout of the repository, not from an installed wheel: "
    "clone it, `make .venv/bin/prescore` there, then run `prescore bench ...` from it"
)


def bench_app() -> typer.Typer:
    """The checkout's `bench.cli` app; loaded by its path, so the checkout's root never joins
    sys.path (its data/ or models/ folders would shadow other distributions' modules)."""
    folder = CHECKOUT / "bench"
    if "bench" not in sys.modules and (folder / "__init__.py").is_file():
        spec = importlib.util.spec_from_file_location(
            "bench", folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench"] = module
        spec.loader.exec_module(module)
    try:
        app: typer.Typer = importlib.import_module("bench.cli").app
    except ModuleNotFoundError as missing:
        if missing.name not in ("bench", "bench.cli"):
            raise
        return missing_benchmarks()
    return app


def missing_benchmarks() -> typer.Typer:
    app = typer.Typer(help="Benchmarks (from a checkout of the repository).")

    @app.callback(invoke_without_command=True)
    def explain() -> None:
        typer.echo(NO_CHECKOUT, err=True)
        raise typer.Exit(2)

    return app
