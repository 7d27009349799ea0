"""The pyfunc model of every registered factory model, logged as MLflow models-from-code.

MLflow copies this file into each logged model and executes it when the model is loaded:
loading runs this code and the project's own ``Predictor``, which reads the ``model_dir``
artifact (JSON metadata and scaler, LightGBM text, torch weights loaded ``weights_only``).
Nothing is unpickled (rule 11): a cloudpickled ``PythonModel`` instance would run whatever
code the pickle names.

Besides ``factory/tracking.py``, this is the one module of the core that imports mlflow:
``mlflow.models.set_model`` is how a models-from-code file names its model.
``factory.tracking`` passes this file's path to MLflow and never imports it.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.models
import pandas as pd
from mlflow.pyfunc import PythonModel

from factory.training.predictor import Predictor


class FactoryPyfunc(PythonModel):
    """Pyfunc flavour of every architecture: a features frame in, one score per row out."""

    def load_context(self, context) -> None:
        """Load the saved model, scaler and metadata from the ``model_dir`` artifact."""
        self._predictor = Predictor(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input: pd.DataFrame, params=None):
        """One predicted forward return per row of ``model_input`` (NaN without a window)."""
        return self._predictor.predict_frame(model_input)


mlflow.models.set_model(FactoryPyfunc())
