"""`python -m bench ...` from the checkout's root: the same commands as `prescore bench`."""

from bench.cli import app

app(prog_name="python -m bench")
