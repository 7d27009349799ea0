"""The pyfunc model of every registered factory model, logged as MLflow models-from-code.

MLflow copies this file into each logged model and executes it when the model is loaded:
loading runs this code and the project's own ``Predictor``, which reads the ``model_dir``
artifact (JSON metadata and scaler, LightGBM text, torch weights loaded ``weights_only``).
Nothing is unpickled (rule 11): a cloudpickled ``PythonModel`` instance would run whatever
code the pickle names.

The served model takes raw OHLCV bars and returns, per bar, the score and the position the
evaluation would have traded (see ``factory.training.predictor``). Loading imports only what
the model's architecture needs (LightGBM, statsmodels or torch), never the training stack.

Besides ``factory/tracking.py`` and ``factory/tracking_registry.py``, this is the one module
of the core that imports mlflow: ``mlflow.models.set_model`` is how a models-from-code file
names its model. ``factory.tracking_registry`` passes this file's path to MLflow and never
imports it.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.models
import pandas as pd
from mlflow.pyfunc import PythonModel

from factory.training.predictor import Predictor


class FactoryPyfunc(PythonModel):
    """Pyfunc flavour of every architecture: raw bars in, ``score`` and ``position`` out."""

    def load_context(self, context) -> None:
        """Load the saved model, scaler and metadata from the ``model_dir`` artifact."""
        self.predictor = Predictor(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Per row of ``model_input``: ``score`` and ``position`` in [-1, 1] (NaN in warm-up).

        ``model_input`` holds ``ts, open, high, low, close, volume`` and optionally
        ``symbol`` (the model's signature); the result keeps its index.
        """
        scored = self.predictor.predict_bars(model_input)
        index = model_input.index if isinstance(model_input, pd.DataFrame) else None
        return pd.DataFrame({"score": scored["score"].to_numpy(),
                             "position": scored["position"].to_numpy()}, index=index)


mlflow.models.set_model(FactoryPyfunc())
