"""A small DeepSets jet tagger in NumPy with hand-written backpropagation.

Forward pass, for constituents ``x`` of shape ``(B, N, F)`` and a boolean ``mask`` ``(B, N)``
(this is exactly what :func:`export_weights` describes, with ``W`` stored as ``(in, out)``)::

    z      = (x - norm.mean) / norm.std                        # per feature
    h      = relu(relu(z @ phi.0.weight + phi.0.bias) @ phi.1.weight + phi.1.bias)
    pooled = sum over N of (h * mask[..., None]) / pool.scale  # masked sum, constant divisor
    logits = relu(pooled @ rho.0.weight + rho.0.bias) @ rho.1.weight + rho.1.bias

The sum (not mean) pooling keeps the multiplicity information, which separates the classes.
Internally only the real constituents are computed (``x[mask]``), so padding costs nothing and
cannot change the output.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from luminary.demo._jets import JetSample
from luminary.errors import InvalidArgumentError

__all__ = [
    "PARAM_NAMES",
    "Adam",
    "DeepSets",
    "TrainResult",
    "export_weights",
    "roc_auc_ovr",
    "train",
]

FloatArray = NDArray[np.floating[Any]]
MetricsCallback = Callable[[int, dict[str, float]], None]
_LAYERS = ("phi.0", "phi.1", "rho.0", "rho.1")
PARAM_NAMES: tuple[str, ...] = tuple(f"{la}.{k}" for la in _LAYERS for k in ("weight", "bias"))
_FORMAT_VERSION = 1
_EVAL_CHUNK = 4096


def _relu(a: FloatArray) -> FloatArray:
    return np.maximum(a, 0, out=a)


def _segment_sum(rows: FloatArray, counts: NDArray[np.intp], n_jets: int) -> FloatArray:
    """Sum consecutive runs of ``rows`` (``counts[j]`` rows for jet ``j``, in order)."""
    out = np.zeros((n_jets, rows.shape[1]), dtype=rows.dtype)
    nonempty = counts > 0
    if rows.shape[0]:
        starts = (np.cumsum(counts) - counts)[nonempty]
        out[nonempty] = np.add.reduceat(rows, starts, axis=0)
    return out


class DeepSets:
    """phi (two ReLU layers per constituent), masked sum, rho (a ReLU layer, linear output)."""

    def __init__(
        self,
        params: Mapping[str, FloatArray],
        *,
        norm_mean: FloatArray,
        norm_std: FloatArray,
        pool_scale: float,
    ) -> None:
        missing = sorted(set(PARAM_NAMES) - set(params))
        if missing:
            msg = f"DeepSets parameters lack {missing}; expected names {list(PARAM_NAMES)}"
            raise InvalidArgumentError(msg)
        self.params: dict[str, FloatArray] = {k: np.array(params[k]) for k in PARAM_NAMES}
        dtype = self.params["phi.0.weight"].dtype
        self.norm_mean: FloatArray = np.asarray(norm_mean, dtype=dtype).copy()
        self.norm_std: FloatArray = np.asarray(norm_std, dtype=dtype).copy()
        self.pool_scale = float(pool_scale)
        w = [self.params[f"{layer}.weight"] for layer in _LAYERS]
        b = [self.params[f"{layer}.bias"] for layer in _LAYERS]
        ok = all(wi.ndim == 2 and bi.shape == wi.shape[1:] for wi, bi in zip(w, b, strict=True))
        ok = ok and all(w0.shape[1] == w1.shape[0] for w0, w1 in itertools.pairwise(w))
        norm_ok = self.norm_mean.shape == self.norm_std.shape == w[0].shape[:1]
        if not (ok and norm_ok and self.pool_scale > 0):
            shapes = {k: v.shape for k, v in self.params.items()}
            msg = f"inconsistent DeepSets arrays {shapes}, norm {self.norm_mean.shape}, " + (
                f"pool_scale {pool_scale!r}; want (F, H) (H, H) (H, H) (H, C), norm (F,), scale > 0"
            )
            raise InvalidArgumentError(msg)
        self.n_features, self.hidden = (int(d) for d in w[0].shape)
        self.n_classes = int(w[-1].shape[1])
        self.dtype: np.dtype[Any] = dtype

    @classmethod
    def init(
        cls,
        n_features: int = 10,
        n_classes: int = 5,
        hidden: int = 32,
        seed: int = 0,
        *,
        pool_scale: float = 30.0,
        dtype: DTypeLike = np.float32,
    ) -> DeepSets:
        """A freshly initialised model (He-normal weights, zero biases, identity normalisation)."""
        rng = np.random.default_rng(seed)
        dims = {"phi.0": (n_features, hidden), "phi.1": (hidden, hidden)}
        dims |= {"rho.0": (hidden, hidden), "rho.1": (hidden, n_classes)}
        params: dict[str, FloatArray] = {}
        for layer, (fan_in, fan_out) in dims.items():
            gain = 1.0 if layer == "rho.1" else 2.0
            w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(gain / fan_in)
            params[f"{layer}.weight"] = w.astype(dtype)
            params[f"{layer}.bias"] = np.zeros(fan_out, dtype=dtype)
        ones = np.ones(n_features, dtype=dtype)
        return cls(params, norm_mean=ones * 0, norm_std=ones, pool_scale=pool_scale)

    @property
    def n_parameters(self) -> int:
        """Trainable parameters (the normalisation constants are not counted)."""
        return sum(int(p.size) for p in self.params.values())

    def astype(self, dtype: DTypeLike) -> DeepSets:
        """A copy computing in ``dtype`` (float64 for gradient checks)."""
        cast = {k: v.astype(dtype) for k, v in self.params.items()}
        norm = {"norm_mean": self.norm_mean.astype(dtype), "norm_std": self.norm_std.astype(dtype)}
        return DeepSets(cast, **norm, pool_scale=self.pool_scale)

    def fit_normalization(self, x: FloatArray, mask: NDArray[np.bool_]) -> None:
        """Set the input standardisation from the real (unmasked) constituents of ``x``."""
        rows = self._rows(x, mask)[0].astype(np.float64)
        if rows.shape[0] == 0:
            msg = "cannot fit the normalisation: the mask selects no constituents"
            raise InvalidArgumentError(msg)
        std, self.norm_mean = rows.std(axis=0), rows.mean(axis=0).astype(self.dtype)
        self.norm_std = np.where(std > 1e-6, std, 1.0).astype(self.dtype)

    def _rows(
        self, x: FloatArray, mask: NDArray[np.bool_]
    ) -> tuple[FloatArray, NDArray[np.intp], int]:
        x = np.asarray(x)
        mask = np.asarray(mask, dtype=bool)
        if x.ndim != 3 or x.shape[2] != self.n_features or mask.shape != x.shape[:2]:
            msg = f"want x (B, N, {self.n_features}), mask (B, N); got {x.shape}, {mask.shape}"
            raise InvalidArgumentError(msg)
        counts = mask.sum(axis=1).astype(np.intp)
        return x[mask].astype(self.dtype, copy=False), counts, int(x.shape[0])

    def _forward(self, x: FloatArray, mask: NDArray[np.bool_]) -> tuple[FloatArray, dict[str, Any]]:
        p = self.params
        rows, counts, n_jets = self._rows(x, mask)
        z = (rows - self.norm_mean) * (1 / self.norm_std)
        h1 = _relu(z @ p["phi.0.weight"] + p["phi.0.bias"])
        h2 = _relu(h1 @ p["phi.1.weight"] + p["phi.1.bias"])
        pooled = _segment_sum(h2, counts, n_jets) * self.dtype.type(1 / self.pool_scale)
        r = _relu(pooled @ p["rho.0.weight"] + p["rho.0.bias"])
        logits = r @ p["rho.1.weight"] + p["rho.1.bias"]
        cache = {"z": z, "h1": h1, "h2": h2, "pooled": pooled, "r": r, "counts": counts}
        return logits, cache

    def forward(self, x: FloatArray, mask: NDArray[np.bool_]) -> FloatArray:
        """Class logits, shape ``(B, n_classes)``."""
        return self._forward(x, mask)[0]

    def predict_proba(self, x: FloatArray, mask: NDArray[np.bool_]) -> FloatArray:
        """Softmax probabilities, shape ``(B, n_classes)``; evaluated in chunks."""
        chunks = [
            np.exp(_log_softmax(self.forward(x[i : i + _EVAL_CHUNK], mask[i : i + _EVAL_CHUNK])))
            for i in range(0, max(len(x), 1), _EVAL_CHUNK)
        ]
        return np.concatenate(chunks, axis=0)

    def _loss_grads_logits(
        self, x: FloatArray, mask: NDArray[np.bool_], y: NDArray[np.integer]
    ) -> tuple[float, dict[str, FloatArray], FloatArray]:
        y = np.asarray(y)
        if y.shape != (len(x),) or len(x) == 0 or y.min() < 0 or y.max() >= self.n_classes:
            msg = f"want B={len(x)} labels in [0, {self.n_classes}), got shape {y.shape}"
            raise InvalidArgumentError(msg)
        p = self.params
        logits, c = self._forward(x, mask)
        n = len(y)
        logp = _log_softmax(logits)
        loss = float(-logp[np.arange(n), y].mean())
        d_logits = np.exp(logp)
        d_logits[np.arange(n), y] -= 1
        d_logits *= self.dtype.type(1 / n)
        g: dict[str, FloatArray] = {}
        g["rho.1.weight"], g["rho.1.bias"] = c["r"].T @ d_logits, d_logits.sum(axis=0)
        d_a = (d_logits @ p["rho.1.weight"].T) * (c["r"] > 0)
        g["rho.0.weight"], g["rho.0.bias"] = c["pooled"].T @ d_a, d_a.sum(axis=0)
        d_pooled = (d_a @ p["rho.0.weight"].T) * self.dtype.type(1 / self.pool_scale)
        d_a = np.repeat(d_pooled, c["counts"], axis=0) * (c["h2"] > 0)
        g["phi.1.weight"], g["phi.1.bias"] = c["h1"].T @ d_a, d_a.sum(axis=0)
        d_a = (d_a @ p["phi.1.weight"].T) * (c["h1"] > 0)
        g["phi.0.weight"], g["phi.0.bias"] = c["z"].T @ d_a, d_a.sum(axis=0)
        return loss, g, logits

    def loss_and_grads(
        self, x: FloatArray, mask: NDArray[np.bool_], y: NDArray[np.integer]
    ) -> tuple[float, dict[str, FloatArray]]:
        """Mean softmax cross-entropy over the batch and its gradient for every parameter."""
        loss, grads, _ = self._loss_grads_logits(x, mask, y)
        return loss, grads

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to ``path`` as an ``.npz`` of :func:`export_weights` (no pickle)."""
        arrays = export_weights(self) | {"format_version": np.array(_FORMAT_VERSION)}
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DeepSets:
        """Read a model written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        version = int(arrays.pop("format_version", -1))
        if version != _FORMAT_VERSION:
            msg = f"{os.fspath(path)!r} is not a DeepSets file of format {_FORMAT_VERSION}"
            raise InvalidArgumentError(msg)
        params = {k: arrays[k] for k in PARAM_NAMES if k in arrays}
        norm = {"norm_mean": arrays["norm.mean"], "norm_std": arrays["norm.std"]}
        return cls(params, **norm, pool_scale=float(arrays["pool.scale"]))


def export_weights(model: DeepSets) -> dict[str, NDArray[np.float32]]:
    """Float32 copies of everything the forward pass needs, under stable names.

    ``norm.mean``/``norm.std`` ``(F,)``, ``phi.0.weight`` ``(F, H)`` and ``phi.0.bias`` ``(H,)``,
    ``phi.1.*``, ``rho.0.*`` ``(H, H)``, ``rho.1.weight`` ``(H, C)`` and ``rho.1.bias`` ``(C,)``,
    ``pool.scale`` (0-d).  Weights are ``(in, out)``: ``y = x @ W + b`` (ONNX ``MatMul`` + ``Add``
    or ``Gemm`` without ``transB``).  See the module docstring for the formula.
    """
    out = {"norm.mean": model.norm_mean, "norm.std": model.norm_std} | model.params
    arrays = {k: np.array(v, dtype=np.float32) for k, v in out.items()}
    arrays["pool.scale"] = np.array(model.pool_scale, dtype=np.float32)
    return arrays


def _log_softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    out: FloatArray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return out


class Adam:
    """Adam; with ``weight_decay`` > 0 it is AdamW (decoupled, on ``*.weight`` only)."""

    def __init__(
        self,
        params: Mapping[str, FloatArray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if not lr > 0 or not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1 or weight_decay < 0:
            msg = f"bad Adam settings lr={lr!r} betas={betas!r} weight_decay={weight_decay!r}"
            raise InvalidArgumentError(msg)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.t = 0
        self._m = {k: np.zeros_like(v) for k, v in params.items()}
        self._v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, FloatArray], grads: Mapping[str, FloatArray]) -> None:
        """Update ``params`` in place from ``grads``."""
        self.t += 1
        b1, b2 = self.betas
        step = float(self.lr * np.sqrt(1 - b2**self.t) / (1 - b1**self.t))
        for name, p in params.items():
            m, v, g = self._m[name], self._v[name], grads[name]
            m[...] = b1 * m + (1 - b1) * g
            v[...] = b2 * v + (1 - b2) * g * g
            if self.weight_decay and name.endswith(".weight"):
                p *= 1 - self.lr * self.weight_decay
            p -= (step * m / (np.sqrt(v) + self.eps)).astype(p.dtype, copy=False)


def roc_auc_ovr(y: NDArray[np.integer], proba: FloatArray) -> float:
    """Macro one-vs-rest ROC AUC (rank statistic, ties get half credit).

    Classes without positives or without negatives in ``y`` are left out; NaN if none remain.
    """
    y = np.asarray(y)
    proba = np.asarray(proba)
    if proba.ndim != 2 or y.shape != proba.shape[:1]:
        msg = f"want y (n,) and proba (n, C); got {y.shape} and {proba.shape}"
        raise InvalidArgumentError(msg)
    aucs = []
    for c in range(proba.shape[1]):
        pos = y == c
        n_pos = int(pos.sum())
        n_neg = len(y) - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        _, inverse, counts = np.unique(proba[:, c], return_inverse=True, return_counts=True)
        mid_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based average rank of each value
        rank_sum = float(mid_rank[inverse][pos].sum())
        aucs.append((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs)) if aucs else float("nan")


@dataclass(frozen=True)
class TrainResult:
    train_loss: float  # mean over the last epoch's steps
    val_loss: float
    val_accuracy: float
    val_auc: float  # macro one-vs-rest
    confusion: NDArray[np.int64]  # (C, C) on the validation set, rows = true class
    elapsed_s: float
    epochs: int
    steps: int
    history: tuple[dict[str, float], ...]  # one on_epoch dict per epoch


def _evaluate(model: DeepSets, sample: JetSample) -> tuple[dict[str, float], NDArray[np.int64]]:
    proba = model.predict_proba(sample.constituents, sample.mask)
    y, pred, n_cls = sample.labels, proba.argmax(axis=1), model.n_classes
    picked = np.clip(proba[np.arange(len(y)), y].astype(np.float64), 1e-12, None)
    metrics = {
        "val_loss": float(-np.log(picked).mean()),
        "val_accuracy": float((pred == y).mean()),
        "val_auc": roc_auc_ovr(y, proba),
    }
    confusion = np.bincount(y * n_cls + pred, minlength=n_cls * n_cls).astype(np.int64)
    return metrics, confusion.reshape(n_cls, n_cls)


def train(
    model: DeepSets,
    train: JetSample,
    val: JetSample,
    *,
    epochs: int = 8,
    batch_size: int = 256,
    lr: float = 1e-2,
    seed: int = 0,
    weight_decay: float = 0.0,
    cosine: bool = True,
    fit_normalization: bool = True,
    on_step: MetricsCallback | None = None,
    on_epoch: MetricsCallback | None = None,
) -> TrainResult:
    """Train ``model`` in place with Adam on ``train``; evaluate on ``val`` after every epoch.

    ``on_step(step, {"loss", "accuracy"})``: 0-based global step, batch metrics before the update.
    ``on_epoch(epoch, {"train_loss", "val_loss", "val_accuracy", "val_auc"})``: 0-based epoch.
    ``cosine`` decays the learning rate from ``lr`` to ``lr / 20``; ``fit_normalization`` first
    sets the input standardisation from ``train``.
    """
    if epochs < 1 or batch_size < 1 or len(train) == 0 or len(val) == 0:
        msg = f"need epochs >= 1, batch_size >= 1 and non-empty samples; got {epochs}, {batch_size}"
        raise InvalidArgumentError(msg)
    start = time.perf_counter()
    if fit_normalization:
        model.fit_normalization(train.constituents, train.mask)
    opt = Adam(model.params, lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    n = len(train)
    total = epochs * -(-n // batch_size)
    step = 0
    history: list[dict[str, float]] = []
    confusion = np.zeros((model.n_classes, model.n_classes), dtype=np.int64)
    for epoch in range(epochs):
        order = rng.permutation(n)
        loss_sum = 0.0
        for lo in range(0, n, batch_size):
            idx = order[lo : lo + batch_size]
            y = train.labels[idx]
            loss, grads, logits = model._loss_grads_logits(
                train.constituents[idx], train.mask[idx], y
            )
            if cosine:
                opt.lr = lr * (0.05 + 0.95 * 0.5 * (1 + float(np.cos(np.pi * step / total))))
            opt.step(model.params, grads)
            loss_sum += loss * len(idx)
            if on_step is not None:
                acc = float((logits.argmax(axis=1) == y).mean())
                on_step(step, {"loss": loss, "accuracy": acc})
            step += 1
        val_metrics, confusion = _evaluate(model, val)
        history.append({"train_loss": loss_sum / n} | val_metrics)
        if on_epoch is not None:
            on_epoch(epoch, dict(history[-1]))
    metrics = history[-1]
    return TrainResult(
        train_loss=metrics["train_loss"],
        val_loss=metrics["val_loss"],
        val_accuracy=metrics["val_accuracy"],
        val_auc=metrics["val_auc"],
        confusion=confusion,
        elapsed_s=time.perf_counter() - start,
        epochs=epochs,
        steps=step,
        history=tuple(history),
    )
