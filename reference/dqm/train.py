"""Training of the DQM models: autoencoders on good windows (reconstruction MSE), and the student
on all windows with the teacher's log-loss as its target (CICADA-style distillation with outlier
exposure: the training runs carry injected anomalies, so the student sees the high-loss tail).

Adam with early stopping on the validation loss; the best epoch's weights are kept. A callback
``progress(epoch, epochs, train_loss, val_loss)`` reports each epoch (the CLI draws a bar).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from reference.dqm.models import resolve_device, window_loss

Progress = Callable[[int, int, float, float], None]


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings. ``max_windows`` caps the windows drawn per epoch (None: all)."""

    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    patience: int = 6  #: epochs without a better validation loss before stopping
    seed: int = 0
    device: str = "cpu"
    max_windows: int | None = 20000
    student_loss: str = "huber"  #: "huber" or "mae" for the student regression

    def __post_init__(self):
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1, not {getattr(self, name)}.")
        if self.learning_rate <= 0:
            raise ValueError(f"TrainConfig.learning_rate must be positive, not {self.learning_rate}.")
        if self.student_loss not in ("huber", "mae"):
            raise ValueError(f"TrainConfig.student_loss must be 'huber' or 'mae', not {self.student_loss!r}.")


@dataclass
class History:
    """What training did: per-epoch losses, the best epoch and the wall time."""

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    best_epoch: int = -1
    seconds: float = 0.0
    windows_per_epoch: int = 0

    def to_dict(self) -> dict:
        return {"train_loss": [float(v) for v in self.train_loss], "val_loss": [float(v) for v in self.val_loss],
                "best_epoch": self.best_epoch, "epochs_run": len(self.train_loss), "seconds": self.seconds,
                "windows_per_epoch": self.windows_per_epoch}


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32), device=device)


def _check_inputs(x: np.ndarray, target: np.ndarray | None) -> None:
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"training needs windows of shape (n, T, F) with n > 0, got {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("training windows contain NaN or infinite values.")
    if target is not None and (target.shape != (len(x),) or not np.all(np.isfinite(target))):
        raise ValueError("student targets must be one finite value per window.")


@torch.no_grad()
def _evaluate(loss_of: Callable, data: tuple, batch_size: int) -> float:
    x = data[0]
    total = 0.0
    for start in range(0, len(x), batch_size):
        batch = tuple(t[start:start + batch_size] for t in data)
        total += float(loss_of(*batch).sum())
    return total / len(x)


class _Loop:
    """Epoch loop shared by both training kinds: sampling, optimisation, early stopping."""

    def __init__(self, model: nn.Module, config: TrainConfig, loss_of: Callable):
        self.model = model
        self.config = config
        self.loss_of = loss_of  # (batch tensors...) -> per-window loss
        self.optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate,
                                          weight_decay=config.weight_decay)
        self.rng = np.random.default_rng(config.seed)

    def _epoch(self, train: tuple) -> float:
        n = len(train[0])
        take = n if self.config.max_windows is None else min(n, self.config.max_windows)
        order = torch.as_tensor(self.rng.permutation(n)[:take], device=train[0].device)
        self.model.train()
        total = 0.0
        for start in range(0, take, self.config.batch_size):
            index = order[start:start + self.config.batch_size]
            loss = self.loss_of(*(t[index] for t in train)).mean()
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            self.optimiser.step()
            total += loss.item() * len(index)
        return total / take

    def run(self, train: tuple, val: tuple, progress: Progress | None) -> History:
        history = History(windows_per_epoch=len(train[0]) if self.config.max_windows is None
                          else min(len(train[0]), self.config.max_windows))
        best = (float("inf"), None)
        start = time.perf_counter()
        for epoch in range(self.config.epochs):
            history.train_loss.append(self._epoch(train))
            self.model.eval()
            history.val_loss.append(_evaluate(self.loss_of, val, 4 * self.config.batch_size))
            if progress is not None:
                progress(epoch + 1, self.config.epochs, history.train_loss[-1], history.val_loss[-1])
            if history.val_loss[-1] < best[0]:
                best = (history.val_loss[-1], copy.deepcopy(self.model.state_dict()))
                history.best_epoch = epoch
            elif epoch - history.best_epoch >= self.config.patience:
                break
        self.model.load_state_dict(best[1])
        self.model.eval()
        history.seconds = time.perf_counter() - start
        return history


def train_autoencoder(model: nn.Module, train_x: np.ndarray, val_x: np.ndarray, config: TrainConfig = TrainConfig(),
                      progress: Progress | None = None) -> History:
    """Train an autoencoder on (good) windows to minimise the window MSE; the model ends on
    ``config.device`` in eval mode with the weights of its best validation epoch."""
    _check_inputs(train_x, None)
    _check_inputs(val_x, None)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model.to(device)
    loop = _Loop(model, config, lambda x: window_loss(model, x))
    return loop.run((_tensor(train_x, device),), (_tensor(val_x, device),), progress)


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 4096, device=None) -> np.ndarray:
    """Model output per window: the window MSE for an autoencoder, the prediction for a student."""
    device = next(model.parameters()).device if device is None else resolve_device(device)
    model.to(device).eval()
    out = []
    for start in range(0, len(x), batch_size):
        batch = _tensor(x[start:start + batch_size], device)
        values = model(batch) if getattr(model, "name", "") == "student" else window_loss(model, batch)
        out.append(values.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


@torch.no_grad()
def error_summary(model: nn.Module, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """An autoencoder's squared reconstruction error per window and feature, summarised over
    time two ways: (n, 2, F) with [:, 0] the mean over the window (persistent deviations) and
    [:, 1] the maximum (transients such as one-lumiblock bursts)."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        batch = _tensor(x[start:start + batch_size], device)
        error = (model(batch) - batch).square()
        out.append(torch.stack([error.mean(dim=1), error.amax(dim=1)], dim=1).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2, x.shape[-1]), np.float32)


def log_loss(loss: np.ndarray) -> np.ndarray:
    """The student's regression target: natural log of the teacher's window loss (floored at 1e-8)."""
    return np.log(np.maximum(loss, 1e-8)).astype(np.float32)


def train_student(student: nn.Module, train: tuple, val: tuple, config: TrainConfig = TrainConfig(),
                  progress: Progress | None = None) -> History:
    """Train a student on (windows, target) pairs, typically target = log(teacher loss)."""
    for x, target in (train, val):
        _check_inputs(x, target)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    student.to(device)
    if config.student_loss == "huber":
        criterion = nn.HuberLoss(reduction="none", delta=0.5)
    else:
        criterion = nn.L1Loss(reduction="none")
    loop = _Loop(student, config, lambda x, y: criterion(student(x), y))
    as_tensors = (lambda pair: (_tensor(pair[0], device), _tensor(pair[1], device)))
    return loop.run(as_tensors(train), as_tensors(val), progress)
