"""Repeated seeds per configuration and the noise-aware choice of the best trial."""

from __future__ import annotations

import math
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

import luminary as lm  # noqa: E402
from luminary.errors import InvalidArgumentError  # noqa: E402
from luminary.tune._noise import NoisyValue, noisy_value  # noqa: E402


def _trial(number: int, values: list[float], value: float | None = None) -> Any:
    return optuna.trial.create_trial(
        value=value if value is not None else sum(values) / len(values),
        params={"x": float(number)},
        distributions={"x": optuna.distributions.FloatDistribution(-100, 100)},
        user_attrs={"luminary:seed_values": values},
    )


def _numbered(trials: list[Any]) -> list[Any]:
    for i, t in enumerate(trials):
        t.number = i
    return trials


def test_lcb_prefers_a_steady_configuration_to_a_lucky_one() -> None:
    steady = [0.90, 0.91, 0.90]  # mean 0.903, tiny error
    lucky = [0.99, 0.80, 0.95]  # mean 0.913, large error
    trials = _numbered([_trial(0, steady), _trial(1, lucky)])
    assert lm.tune.select(trials, maximize=True, rule="mean").number == 1
    assert lm.tune.select(trials, maximize=True, rule="lcb").number == 0
    # minimising, the pessimistic end is the upper bound
    low = _numbered([_trial(0, [0.10, 0.11, 0.10]), _trial(1, [0.01, 0.20, 0.05])])
    assert lm.tune.select(low, maximize=False, rule="lcb").number == 0


def test_lcb_pools_the_seed_noise_and_trusts_the_configuration_measured_more() -> None:
    def spread(m: float, n: int) -> list[float]:
        return [m - 0.03, m, m + 0.03] * (n // 3)

    trials = _numbered(
        [
            _trial(0, spread(0.91, 3)),  # best mean, three seeds
            _trial(1, spread(0.905, 9)),  # nearly as good, nine seeds: a tighter bound
            _trial(2, spread(0.50, 3)),
            _trial(3, spread(0.40, 3)),
        ]
    )
    assert lm.tune.select(trials, maximize=True, rule="mean").number == 0
    assert lm.tune.select(trials, maximize=True, rule="lcb").number == 1


def test_noisy_value_is_mean_and_standard_error() -> None:
    got = noisy_value(_trial(0, [1.0, 2.0, 3.0]))
    assert got is not None
    assert got.mean == pytest.approx(2.0)
    assert got.stderr == pytest.approx(1.0 / math.sqrt(3))
    assert got.n == 3
    assert str(got) == "2 ± 0.58 (n=3)"
    assert NoisyValue(1.0, 0.5, 4).bound(2.0, maximize=True) == 0.0


def test_single_seed_trials_rank_by_their_value() -> None:
    trials = _numbered([_trial(0, [0.5]), _trial(1, [0.7]), _trial(2, [0.6])])
    assert lm.tune.select(trials, maximize=True).number == 1


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"rule": "median"}, "selection rule 'median'"),
        ({"z": -1.0}, "z=-1.0"),
        ({"z": math.nan}, "z=nan"),
    ],
)
def test_bad_selection_arguments_are_refused(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidArgumentError, match=needle):
        lm.tune.select(_numbered([_trial(0, [1.0])]), maximize=True, **kwargs)


def test_select_needs_a_complete_trial() -> None:
    with pytest.raises(InvalidArgumentError, match="no trial is complete"):
        lm.tune.select([], maximize=True)


def test_optimize_repeats_each_configuration_over_seeds() -> None:
    seen: list[int] = []

    def objective(trial: Any, seed: int) -> float:
        seen.append(seed)
        x = trial.suggest_float("x", -1, 1)
        trial.report(x, 0)
        return x + 0.01 * seed

    study = lm.tune.optimize(
        objective,
        4,
        study="seeds",
        seeds=3,
        sampler=optuna.samplers.RandomSampler(0),
        progress=False,
    )
    assert seen == [0, 1, 2] * 4
    for t in study.trials:
        vals = t.user_attrs["luminary:seed_values"]
        assert vals == [pytest.approx(t.params["x"] + 0.01 * s) for s in range(3)]
        assert t.value == pytest.approx(sum(vals) / 3)
        assert t.user_attrs["luminary:stderr"] == pytest.approx(0.01 / math.sqrt(3))
    best = lm.tune.best(study, rule="mean")
    assert best.number == max(study.trials, key=lambda t: -t.value).number  # minimise


def test_current_seed_is_visible_inside_the_objective() -> None:
    seeds: list[int | None] = []

    def objective(trial: Any) -> float:
        seeds.append(lm.tune.current_seed())
        return trial.suggest_float("x", 0, 1)

    lm.tune.optimize(objective, 1, study="cs", seeds=2, progress=False)
    assert seeds == [0, 1]
    assert lm.tune.current_seed() is None


def test_seeds_need_a_single_objective_study() -> None:
    with pytest.raises(InvalidArgumentError, match="single-objective"):
        lm.tune.optimize(
            lambda t: (1.0, 2.0), 1, study="mo", directions=["minimize", "maximize"], seeds=2
        )
