"""Evaluation stage: agreement with humans, calibration, fairness and the routing policy."""
