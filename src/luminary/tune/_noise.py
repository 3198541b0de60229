"""Noisy objectives: a configuration measured with several seeds, and a choice that respects
the noise.

Physics metrics fluctuate with the training seed and the sample. With ``seeds=k`` each trial
runs its objective ``k`` times (seeds ``0 … k-1``, passed as ``seed=`` when the objective
takes it, and readable as :func:`luminary.tune.current_seed`); the trial's value is the mean,
and the trial keeps every value, the mean and its standard error as user attributes. The
choice of the best configuration (:func:`select`) then ranks by a confidence bound rather than
by the luckiest draw: for a maximised metric, the lower bound ``mean - z·stderr``. The standard
error comes from the seed noise pooled over every repeated trial (a seed's noise is much the
same for every configuration, and three seeds alone estimate it poorly), so a configuration
measured with more seeds gets a tighter bound.
"""

from __future__ import annotations

import inspect
import math
import statistics
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from luminary.errors import InvalidArgumentError

__all__ = ["NoisyValue", "current_seed", "measure", "noisy_value", "select"]

#: User attributes a repeated trial keeps.
VALUES_ATTR = "luminary:seed_values"
MEAN_ATTR = "luminary:mean"
STDERR_ATTR = "luminary:stderr"

_local = threading.local()


@dataclass(frozen=True)
class NoisyValue:
    """A configuration's value over seeds: mean, standard error of the mean, and count."""

    mean: float
    stderr: float
    n: int

    def bound(self, z: float, maximize: bool) -> float:
        """The pessimistic end of the interval ``mean ± z·stderr``."""
        return self.mean - z * self.stderr if maximize else self.mean + z * self.stderr

    def __str__(self) -> str:
        return f"{self.mean:.6g} ± {self.stderr:.2g} (n={self.n})"


def current_seed() -> int | None:
    """The seed of the repetition running now (``None`` outside a repeated trial)."""
    return getattr(_local, "seed", None)


def _takes_seed(objective: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(objective).parameters
    except (TypeError, ValueError):
        return False
    return "seed" in params


def measure(objective: Callable[..., Any], trial: Any, seeds: int) -> float:
    """Run ``objective(trial)`` once per seed; record the values, mean and standard error on
    the trial; return the mean. A single-objective study only."""
    if seeds < 1:
        msg = f"seeds={seeds} is not valid; give 1 or more"
        raise InvalidArgumentError(msg)
    takes_seed = _takes_seed(objective)
    values: list[float] = []
    for seed in range(seeds):
        _local.seed = seed
        try:
            with warnings.catch_warnings():
                if seed > 0:  # later seeds' reports repeat steps: pruning follows the first
                    warnings.filterwarnings("ignore", message=".*is already reported")
                value = objective(trial, seed=seed) if takes_seed else objective(trial)
        finally:
            _local.seed = None
        if isinstance(value, Sequence):
            msg = "repeated seeds need a single objective; this objective returned several values"
            raise InvalidArgumentError(msg)
        values.append(float(value))
    mean = statistics.fmean(values)
    stderr = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.inf
    trial.set_user_attr(VALUES_ATTR, values)
    trial.set_user_attr(MEAN_ATTR, mean)
    trial.set_user_attr(STDERR_ATTR, stderr if math.isfinite(stderr) else None)
    return mean


def _pooled_sd(values: Sequence[NoisyValue | None]) -> float | None:
    """The seed noise's standard deviation pooled over repeated trials (the noise of a seed
    is a property of the training, much the same for every configuration; three seeds alone
    say little about it). ``None`` with fewer than three repeated trials."""
    repeated = [v for v in values if v is not None and v.n > 1 and math.isfinite(v.stderr)]
    if len(repeated) < 3:
        return None
    dof = sum(v.n - 1 for v in repeated)
    ss = sum((v.stderr * math.sqrt(v.n)) ** 2 * (v.n - 1) for v in repeated)
    return math.sqrt(ss / dof)


def noisy_value(trial: Any) -> NoisyValue | None:
    """The seeds' mean and standard error a finished trial keeps (``None``: not repeated)."""
    values = trial.user_attrs.get(VALUES_ATTR)
    if not values:
        return None
    vals = [float(v) for v in values]
    mean = statistics.fmean(vals)
    stderr = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else math.inf
    return NoisyValue(mean, stderr, len(vals))


def select(trials: Sequence[Any], *, maximize: bool, rule: str = "lcb", z: float = 1.0) -> Any:
    """The best complete trial by ``rule``: ``"lcb"`` ranks by the pessimistic bound of each
    trial's seeds (``mean - z·stderr`` when maximising), ``"mean"`` by the mean (a trial
    without repeats counts by its value), ``"value"`` by Optuna's value."""
    if rule not in ("lcb", "mean", "value"):
        msg = f"selection rule {rule!r} is not valid; use 'lcb', 'mean' or 'value'"
        raise InvalidArgumentError(msg)
    if not math.isfinite(z) or z < 0:
        msg = f"z={z} is not valid; give a finite number >= 0 (1.0: one standard error)"
        raise InvalidArgumentError(msg)
    done = [t for t in trials if t.state.name == "COMPLETE" and t.values]
    if not done:
        msg = "no trial is complete yet; run some trials first"
        raise InvalidArgumentError(msg)
    pooled = _pooled_sd([noisy_value(t) for t in done]) if rule == "lcb" else None

    def score(t: Any) -> float:
        noisy = noisy_value(t) if rule != "value" else None
        if noisy is None:
            return float(t.values[0]) if maximize else -float(t.values[0])
        if rule == "mean" or (noisy.n < 2 and pooled is None):  # nothing known of its noise
            return noisy.mean if maximize else -noisy.mean
        if pooled is not None:  # the seed noise, estimated from every repeated trial
            noisy = NoisyValue(noisy.mean, pooled / math.sqrt(noisy.n), noisy.n)
        bound = noisy.bound(z, maximize)
        return bound if maximize else -bound

    return max(done, key=lambda t: (score(t), -t.number))
