"""What a run records while it trains, shared by every engine (no TensorFlow here).

Weights are snapshotted at initialisation and after every epoch under canonical
names ("dense_0/kernel", "output/bias", ...) that are the same in every engine, so
that A and B can be compared variable by variable whatever engines made them.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np

from core.budget import recorded_epochs, snapshot_every

Emit = Callable[[dict], None]


class Recording:
    """Weights and test predictions at initialisation and after each epoch, and the history.

    A run whose snapshots would outgrow the record budget keeps every k-th epoch (and
    always the initialisation and the last one); `epochs` lists the ones kept.

    Test loss and metric are computed here, in NumPy, from the recorded predictions, so
    every engine reports them the same way (cross-entropy on clipped probabilities and
    accuracy, or mean squared and mean absolute error).
    """

    def __init__(self, names: list[str], emit: Emit, y_test: np.ndarray, task: str, planned_epochs: int):
        if len(set(names)) != len(names):
            raise ValueError(f"weight names are not unique: {names}")
        self.names, self.emit, self.y_test, self.task = names, emit, y_test, task
        self.planned_epochs = planned_epochs
        self.keep: set[int] = set()  # the epochs to snapshot (core.budget.recorded_epochs)
        self.epochs: list[int] = []  # the epochs snapshotted, 0 = initialisation
        self.snapshots: list[list[np.ndarray]] = []
        self.predictions: list[np.ndarray] = []
        self.history: list[dict] = []
        self.diverged_epoch: int | None = None
        self.initialised_at: float | None = None  # perf_counter when the model was built: build ends, training starts

    def initial(self, values: list[np.ndarray], predictions) -> None:
        self.initialised_at = time.perf_counter()
        self.snapshots.append([np.array(v, copy=True) for v in values])
        self.predictions.append(_as_predictions(predictions))
        self.epochs.append(0)
        size = sum(v.nbytes for v in self.snapshots[0]) + self.predictions[0].nbytes
        self.keep = set(recorded_epochs(self.planned_epochs, snapshot_every(size, self.planned_epochs)))
        self.emit({"type": "init", "weights": dict(zip(self.names, self.snapshots[0]))})

    def epoch_end(self, loss: float, metric: float, values: list[np.ndarray], predictions) -> bool:
        """Record one epoch; False when training should stop because the loss went non-finite."""
        predictions = _as_predictions(predictions)
        test_loss, test_metric = test_scores(predictions, self.y_test, self.task)
        row = {"epoch": len(self.history) + 1, "loss": float(loss), "metric": float(metric),
               "test_loss": test_loss, "test_metric": test_metric}
        self.history.append(row)
        if not math.isfinite(row["loss"]) and self.diverged_epoch is None:
            self.diverged_epoch = row["epoch"]
        epoch = row["epoch"]
        if epoch in self.keep or self.diverged_epoch is not None:  # a diverged run's record ends here
            self.snapshots.append([np.array(v, copy=True) for v in values])
            self.predictions.append(predictions)
            self.epochs.append(epoch)
        self.emit({"type": "epoch", **row})
        return self.diverged_epoch is None

    def weight_arrays(self) -> dict[str, np.ndarray]:
        """name -> array of shape (len(self.epochs), *variable shape); index 0 is the initialisation."""
        return {name: np.stack([snap[i] for snap in self.snapshots]) for i, name in enumerate(self.names)}

    def prediction_array(self) -> np.ndarray:
        """(len(self.epochs), test samples, outputs): test predictions at each recorded epoch."""
        return np.stack(self.predictions)


def _as_predictions(p) -> np.ndarray:
    return np.asarray(p, dtype=np.float64)


def test_scores(predictions: np.ndarray, y: np.ndarray, task: str) -> tuple[float, float]:
    """(loss, metric): cross-entropy and accuracy, or mean squared and mean absolute error."""
    with np.errstate(all="ignore"):
        if task == "classification":
            picked = np.clip(predictions[np.arange(len(y)), y], 1e-7, 1 - 1e-7)
            return float(-np.mean(np.log(picked))), float(np.mean(np.argmax(predictions, axis=1) == y))
        err = predictions[:, 0] - y
        return float(np.mean(err ** 2)), float(np.mean(np.abs(err)))


def fixed_orders(n: int, epochs: int, seed: int) -> list[np.ndarray]:
    """The 'fixed' batch order: one NumPy permutation per epoch, the same in every engine."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(epochs)]
