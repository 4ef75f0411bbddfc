"""An iris classifier for the cortex_iac serving runtime.

The model is trained when the API starts, from the iris data set that ships inside scikit-learn, so
the example needs no download and no model file.
"""

from __future__ import annotations

from typing import Any

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from starlette.responses import JSONResponse

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


class Handler:
    """Predicts the iris species of one flower, given as a JSON object with the four ``FEATURES``."""

    def __init__(self, config: dict[str, Any]) -> None:
        iris = load_iris()
        self.labels = [str(name) for name in iris.target_names]
        self.model = LogisticRegression(max_iter=config.get("max_iter", 1000))
        self.model.fit(iris.data, iris.target)

    def handle_post(self, payload: Any) -> dict[str, str] | JSONResponse:
        """Return ``{"prediction": "setosa" | "versicolor" | "virginica"}``, or 400 for a bad flower."""
        if not isinstance(payload, dict) or any(not isinstance(payload.get(f), (int, float)) for f in FEATURES):
            # A Response is sent as is: the way to answer a client error with a status of one's own.
            return JSONResponse({"error": f"expected a JSON object with numbers for {', '.join(FEATURES)}"}, 400)
        row = [[payload[feature] for feature in FEATURES]]
        return {"prediction": self.labels[int(self.model.predict(row)[0])]}
