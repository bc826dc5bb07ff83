"""The prescore command line: one Typer app over the stages."""
