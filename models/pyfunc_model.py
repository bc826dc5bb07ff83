"""The file MLflow runs to rebuild the pyfunc model ("models from code"): nothing is pickled."""

from mlflow.models import set_model

from prescore.models.pyfunc import ScoringPyfunc

set_model(ScoringPyfunc())
