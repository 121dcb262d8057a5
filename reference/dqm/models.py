"""Models of the DQM chain: the LSTM autoencoder (teacher), the xLSTM autoencoder, and a student
that predicts log(teacher loss) from the window; losses, a factory, saving and loading, and a
batch latency helper.

Windows are float tensors (batch, time T, features F), one row per lumiblock.
"""

from __future__ import annotations

import copy
import pickle
import statistics
import time
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from reference.dqm.xlstm import DQMModelError, XLSTMAutoencoder, XLSTMOptions, check_positive, check_windows

DEFAULT_WINDOW = 32  #: lumiblocks per window used where a model does not fix the window length
MODEL_FORMAT = "hepaudit.dqm.model"  #: tag stored in model files
MODEL_FORMAT_VERSION = 1
STUDENT_ARCHS = ("mlp", "cnn", "stats")
STATS_FLOOR = 1e-4  #: floor of the variances and squares before their log (standardised units squared)

__all__ = ["DEFAULT_WINDOW", "ChannelMaxima", "DQMModelError", "LSTMAutoencoder", "LSTMConfig", "Student",
           "StudentConfig", "WindowStatistics", "XLSTMAutoencoder", "build_model", "latency", "load_model",
           "latency_summary", "model_config", "per_feature_error", "save_model", "window_loss"]


@dataclass(frozen=True)
class LSTMConfig:
    """Shape of an LSTMAutoencoder."""

    n_features: int = 16  #: features per lumiblock
    hidden: int = 64  #: LSTM hidden units (encoder and decoder)
    latent: int = 16  #: size of the window code
    layers: int = 1  #: stacked LSTM layers (encoder and decoder)

    def __post_init__(self):
        check_positive("LSTMAutoencoder", **asdict(self))


class LSTMAutoencoder(nn.Module):
    """nn.LSTM encoder -> last hidden state -> Linear to latent -> repeated over time -> nn.LSTM
    decoder -> Linear to F. About 44k parameters at the defaults."""

    name = "lstm"

    def __init__(self, n_features: int = 16, hidden: int = 64, latent: int = 16, layers: int = 1):
        super().__init__()
        self.config = LSTMConfig(n_features, hidden, latent, layers)
        self.encoder = nn.LSTM(n_features, hidden, layers, batch_first=True)
        self.to_latent = nn.Linear(hidden, latent)
        self.decoder = nn.LSTM(latent, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, n_features)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Window code (batch, latent) from windows (batch, time, F)."""
        check_windows(x, self.config.n_features)
        _, (h_last, _) = self.encoder(x)
        return self.to_latent(h_last[-1])

    def decode(self, code: torch.Tensor, steps: int) -> torch.Tensor:
        """Reconstruction (batch, steps, F) from codes (batch, latent)."""
        h, _ = self.decoder(code.unsqueeze(1).expand(-1, steps, -1))
        return self.out(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), x.shape[1])


@dataclass(frozen=True)
class StudentConfig:
    """Shape of a Student; ``channels`` and ``kernel`` are used by the "cnn" variant only."""

    n_features: int = 16  #: features per lumiblock
    window: int = DEFAULT_WINDOW  #: lumiblocks per window (fixed: the input is flattened)
    hidden: int = 32  #: hidden units of the dense layer
    arch: str = "mlp"  #: "mlp": flatten -> dense; "cnn": strided conv1d over time first; "stats": window statistics
    channels: int = 8  #: cnn: output channels of the conv1d
    kernel: int = 4  #: cnn: conv1d width and stride, in lumiblocks

    def __post_init__(self):
        check_positive("Student", n_features=self.n_features, window=self.window, hidden=self.hidden,
                       channels=self.channels, kernel=self.kernel)
        if self.arch not in STUDENT_ARCHS:
            raise DQMModelError(f"Student arch must be one of {STUDENT_ARCHS}, got {self.arch!r}.")
        if self.arch == "cnn" and self.kernel > self.window:
            raise DQMModelError(f"Student kernel {self.kernel} is longer than the window {self.window}.")


class WindowStatistics(nn.Module):
    """Per feature of a window (batch, T, F): log variance, log peak squared deviation from the
    window mean, log mean square (the deviation from the run reference) and the mean, as
    (batch, 4F) in that order. Variances and squares are floored at STATS_FLOOR before the log.

    These are the quantities the teacher's score is made of: its error channels are a feature's
    mean and peak squared reconstruction error over the window, and on good windows the
    autoencoder reconstructs little more than the window's level."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1)
        centred = x - mean.unsqueeze(1)
        low, high = torch.aminmax(x, dim=1)
        peak = torch.maximum(high - mean, mean - low)
        squares = torch.cat([centred.square().mean(1), peak.square(), x.square().mean(1)], 1)
        return torch.cat([torch.log(squares.clamp_min(STATS_FLOOR)), mean], 1)


class ChannelMaxima(nn.Module):
    """Three maxima of the log variances and log peaks of WindowStatistics (its first 2F values),
    each shifted by a learned offset (a log scale per channel): over the variances, over the
    peaks and over both. (batch, 3)."""

    def __init__(self, n_features: int):
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(2 * n_features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n_channels = len(self.offset)
        shifted = (features[:, :n_channels] + self.offset).view(len(features), 2, n_channels // 2)
        return torch.cat([shifted.amax(2), shifted.amax((1, 2)).unsqueeze(1)], 1)


class Student(nn.Module):
    """Predicts log(teacher window loss), output (batch,).

    "mlp": flatten (T*F) -> Linear(hidden) -> ReLU -> Linear(1).
    "cnn": Conv1d over time (F -> channels, width = stride = kernel) -> ReLU -> flatten ->
    Linear(hidden) -> ReLU -> Linear(1).
    "stats": WindowStatistics (4F values) -> Linear(hidden) -> ReLU -> Linear(1), plus a linear
    skip from ChannelMaxima: the teacher scores a window by its worst error channel, in units of a
    per-channel scale, and a maximum is what a small ReLU layer approximates worst.
    Keyword options: arch, channels, kernel.
    """

    name = "student"

    def __init__(self, n_features: int = 16, window: int = DEFAULT_WINDOW, hidden: int = 32, **options):
        super().__init__()
        unknown = sorted(set(options) - {"arch", "channels", "kernel"})
        if unknown:
            raise DQMModelError(f"unknown Student option(s): {', '.join(unknown)}.")
        self.config = StudentConfig(n_features, window, hidden, **options)
        cfg = self.config
        self.conv = self.statistics = self.maxima = None
        flat = window * n_features
        if cfg.arch == "cnn":
            self.conv = nn.Conv1d(n_features, cfg.channels, cfg.kernel, stride=cfg.kernel)
            flat = cfg.channels * (window // cfg.kernel)
        elif cfg.arch == "stats":
            self.statistics = WindowStatistics()
            self.maxima = ChannelMaxima(n_features)
            self.skip = nn.Linear(3, 1)
            flat = 4 * n_features
        self.hidden = nn.Linear(flat, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_windows(x, self.config.n_features, self.config.window)
        if self.statistics is not None:
            features = self.statistics(x)
            return (self.out(torch.relu(self.hidden(features))) + self.skip(self.maxima(features))).squeeze(-1)
        if self.conv is not None:
            x = torch.relu(self.conv(x.transpose(1, 2)))
        return self.out(torch.relu(self.hidden(x.flatten(1)))).squeeze(-1)


MODEL_CLASSES = {cls.name: cls for cls in (LSTMAutoencoder, XLSTMAutoencoder, Student)}

_OPTIONS = {
    "lstm": {"hidden", "latent", "layers"},
    "xlstm": {"d_model", "latent", "blocks", *(field.name for field in fields(XLSTMOptions))},
    "student": {"hidden", "arch", "channels", "kernel"},
}


def build_model(name: str, n_features: int = 16, window: int = DEFAULT_WINDOW, **kwargs) -> nn.Module:
    """Model by name ("lstm", "xlstm", "student"); kwargs are the class's options.

    ``window`` fixes the student's input length; the autoencoders accept any window length.
    """
    if name not in MODEL_CLASSES:
        raise DQMModelError(f"unknown model {name!r}; choose one of {sorted(MODEL_CLASSES)}.")
    check_positive(f"build_model({name!r})", window=window)
    unknown = sorted(set(kwargs) - _OPTIONS[name])
    if unknown:
        raise DQMModelError(f"unknown option(s) for model {name!r}: {', '.join(unknown)}.")
    if name == "student":
        return Student(n_features, window, **kwargs)
    return MODEL_CLASSES[name](n_features, **kwargs)


def model_config(model: nn.Module) -> dict:
    """Everything build_model needs to rebuild the model: {"name": ..., **options}."""
    name = getattr(model, "name", None)
    if name not in MODEL_CLASSES or not isinstance(model, MODEL_CLASSES[name]):
        raise DQMModelError(f"model_config needs a DQM model, got {type(model).__name__}.")
    config = {"name": name, **asdict(model.config)}
    if name == "xlstm":
        config.update(asdict(model.options))
    return config


def model_from_config(config: dict) -> nn.Module:
    """Build a model from a model_config dict."""
    if not isinstance(config, dict) or "name" not in config:
        raise DQMModelError("the model config must be a dict with a 'name' entry.")
    options = dict(config)
    name = options.pop("name")
    n_features = options.pop("n_features", 16)
    window = options.pop("window", DEFAULT_WINDOW)
    return build_model(name, n_features, window, **options)


def save_model(path, model: nn.Module) -> Path:
    """Save the state dict and config of a DQM model with torch.save; returns the path."""
    path = Path(path)
    blob = {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, "config": model_config(model),
            "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()}}
    try:
        torch.save(blob, path)
    except OSError as exc:
        raise DQMModelError(f"cannot write the model file {path}: {exc.strerror or exc}.") from exc
    return path


def resolve_device(device) -> torch.device:
    """torch.device from a name or device; DQMModelError for bad names or an absent CUDA device."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DQMModelError(f"{device!r} is not a torch device name.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DQMModelError(f"device {device!r} was asked for but CUDA is not available.")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise DQMModelError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s).")
    return resolved


def _read_model_file(path: Path) -> dict:
    if not path.is_file():
        raise DQMModelError(f"no model file at {path}.")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise DQMModelError(f"cannot read the model file {path}: {exc.strerror or exc}.") from exc
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        raise DQMModelError(f"{path} is not a DQM model file ({type(exc).__name__}).") from exc
    if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
        raise DQMModelError(f"{path} is not a DQM model file (no '{MODEL_FORMAT}' tag).")
    if blob.get("version") != MODEL_FORMAT_VERSION:
        raise DQMModelError(f"{path} has model-file version {blob.get('version')!r}; "
                            f"this code reads version {MODEL_FORMAT_VERSION}.")
    if not isinstance(blob.get("state_dict"), dict):
        raise DQMModelError(f"{path} has no state dict.")
    return blob


def load_model(path, device="cpu") -> nn.Module:
    """Load a model saved by save_model onto device, in eval mode."""
    path = Path(path)
    target = resolve_device(device)
    blob = _read_model_file(path)
    model = model_from_config(blob.get("config"))
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise DQMModelError(f"the weights in {path} do not match its config {blob['config']}.") from exc
    return model.to(target).eval()


def _reconstruction(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    recon = model(x)
    if recon.shape != x.shape:
        raise DQMModelError(f"{type(model).__name__} is not an autoencoder: its output has shape "
                            f"{tuple(recon.shape)}, the input {tuple(x.shape)}.")
    return recon


def per_feature_error(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Squared reconstruction error averaged over time, per window and feature: (batch, F)."""
    return (_reconstruction(model, x) - x).square().mean(dim=1)


def window_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-window mean squared reconstruction error over time and features: (batch,)."""
    return per_feature_error(model, x).mean(dim=1)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_calls(model: nn.Module, x: torch.Tensor, calls: int) -> list[float]:
    times = []
    with torch.inference_mode():
        for _ in range(calls):
            _synchronize(x.device)
            start = time.perf_counter()
            model(x)
            _synchronize(x.device)
            times.append(time.perf_counter() - start)
    return times


def latency(model: nn.Module, batch: int = 1, repeats: int = 100, device="cpu", window: int | None = None) -> dict:
    """Seconds per forward call on random windows (batch, window, F) after warm-up.

    window defaults to the model's window (students) or DEFAULT_WINDOW. Returns median, IQR
    (q25, q75), min and max in seconds, with repeats, warm-up calls, batch, window and device.
    A copy of the model runs, on device and in eval mode; the model itself is left as it is.
    """
    config = model_config(model)
    window = config.get("window", DEFAULT_WINDOW) if window is None else window
    check_positive("latency", batch=batch, repeats=repeats, window=window)
    target = resolve_device(device)
    model = copy.deepcopy(model).to(target).eval()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, window, config["n_features"], generator=generator).to(target)
    warmup = max(3, repeats // 10)
    _timed_calls(model, x, warmup)
    return latency_summary(_timed_calls(model, x, repeats), warmup=warmup, batch=batch, window=window,
                           device=str(target), method="perf-counter")


def latency_summary(times: list[float], **details) -> dict:
    """Median, IQR (q25, q75), min and max of timed calls in seconds, their count as ``repeats``,
    and the given details (warm-up calls, batch, window, device, method)."""
    q25, _, q75 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return {"median_s": statistics.median(times), "q25_s": q25, "q75_s": q75, "iqr_s": q75 - q25,
            "min_s": min(times), "max_s": max(times), "repeats": len(times), **details}
