"""Serving stage: the BentoML scoring service and the reviewer page."""
