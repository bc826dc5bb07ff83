"""Training stage: experiment configs and the runs that fit scorers and log them to MLflow."""
