"""Scorers that predict a rubric level per evidence item: fit / predict_proba / save / load."""
