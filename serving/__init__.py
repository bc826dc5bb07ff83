"""Serving stage: the BentoML scoring API (the review pages it mounts are review/)."""
