"""Benchmarks: accuracy on the public sets, serving speed, a load generator, probes and the
lent-GPU scripts. They print tables for eval/RESULTS.md and never run as timed tests.

They live in the checkout beside the stages, not in the installed package or the Bento: a
served model needs none of them. `prescore bench ...` finds them from a checkout
(prescore/cli.py), and `python -m bench ...` runs them from its root.
"""
