"""The NumPy DeepSets tagger: gradients, masking, persistence, metrics and a short training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from luminary.demo._deepsets import (
    PARAM_NAMES,
    Adam,
    DeepSets,
    TrainResult,
    export_weights,
    roc_auc_ovr,
    train,
)
from luminary.demo._jets import CLASSES, JetSample, make_jets, train_test_split
from luminary.errors import InvalidArgumentError


@pytest.fixture(scope="module")
def sample() -> JetSample:
    return make_jets(3000, max_constituents=20, seed=11)


def fitted_model(sample: JetSample, hidden: int = 8, seed: int = 0) -> DeepSets:
    model = DeepSets.init(n_features=10, n_classes=5, hidden=hidden, seed=seed, pool_scale=20.0)
    model.fit_normalization(sample.constituents, sample.mask)
    rng = np.random.default_rng(seed)
    for name in PARAM_NAMES:  # non-zero biases so every gradient is exercised
        if name.endswith("bias"):
            model.params[name] += rng.normal(0, 0.1, model.params[name].shape).astype(np.float32)
    return model


def test_init_shapes_and_parameter_count() -> None:
    model = DeepSets.init(n_features=10, n_classes=5, hidden=32, seed=0)
    assert set(model.params) == set(PARAM_NAMES)
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert model.params["phi.0.weight"].shape == (10, 32)
    assert model.params["rho.1.weight"].shape == (32, 5)
    assert model.n_parameters == (10 * 32 + 32) + 2 * (32 * 32 + 32) + (32 * 5 + 5)
    again = DeepSets.init(n_features=10, n_classes=5, hidden=32, seed=0)
    np.testing.assert_array_equal(model.params["phi.1.weight"], again.params["phi.1.weight"])


def test_forward_and_predict_proba(sample: JetSample) -> None:
    model = fitted_model(sample)
    logits = model.forward(sample.constituents[:50], sample.mask[:50])
    assert logits.shape == (50, 5)
    assert logits.dtype == np.float32
    proba = model.predict_proba(sample.constituents, sample.mask)
    assert proba.shape == (len(sample), 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_gradients_match_finite_differences(sample: JetSample) -> None:
    model = fitted_model(sample, hidden=6, seed=3).astype(np.float64)
    x, mask, y = sample.constituents[:7], sample.mask[:7], sample.labels[:7]
    loss, grads = model.loss_and_grads(x, mask, y)
    assert np.isfinite(loss)
    assert loss > 0
    assert set(grads) == set(PARAM_NAMES)
    eps = 1e-6
    for name in PARAM_NAMES:
        param = model.params[name]
        assert grads[name].shape == param.shape
        numeric = np.zeros_like(param)
        for i in np.ndindex(param.shape):
            saved = param[i]
            param[i] = saved + eps
            up = model.loss_and_grads(x, mask, y)[0]
            param[i] = saved - eps
            down = model.loss_and_grads(x, mask, y)[0]
            param[i] = saved
            numeric[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-8, err_msg=name)


def test_padding_does_not_change_the_output(sample: JetSample) -> None:
    model = fitted_model(sample)
    x, mask = sample.constituents[:40].copy(), sample.mask[:40]
    reference = model.forward(x, mask)
    x[~mask] = np.random.default_rng(0).normal(0, 100, size=(int((~mask).sum()), 10))
    np.testing.assert_array_equal(model.forward(x, mask), reference)
    # wider padding, and constituents in any slot order, give the same answer
    wide_x = np.concatenate([x, np.full((40, 7, 10), 5.0, np.float32)], axis=1)
    wide_mask = np.concatenate([mask, np.zeros((40, 7), bool)], axis=1)
    perm = np.random.default_rng(1).permutation(wide_x.shape[1])
    shuffled = model.forward(wide_x[:, perm], wide_mask[:, perm])
    np.testing.assert_allclose(shuffled, reference, rtol=1e-5, atol=1e-5)


def test_empty_jet_gives_finite_output(sample: JetSample) -> None:
    model = fitted_model(sample)
    mask = sample.mask[:3].copy()
    mask[1] = False
    assert np.isfinite(model.predict_proba(sample.constituents[:3], mask)).all()


def test_save_load_round_trip(sample: JetSample, tmp_path: Path) -> None:
    model = fitted_model(sample)
    path = tmp_path / "tagger.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as data:
        assert "phi.0.weight" in data.files
    loaded = DeepSets.load(path)
    assert loaded.n_parameters == model.n_parameters
    assert loaded.pool_scale == model.pool_scale
    np.testing.assert_array_equal(
        loaded.predict_proba(sample.constituents, sample.mask),
        model.predict_proba(sample.constituents, sample.mask),
    )


def test_load_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(InvalidArgumentError):
        DeepSets.load(path)


def test_exported_weights_rebuild_the_forward_pass(sample: JetSample) -> None:
    model = fitted_model(sample)
    w = export_weights(model)
    assert set(w) == {*PARAM_NAMES, "norm.mean", "norm.std", "pool.scale"}
    assert all(v.dtype == np.float32 for v in w.values())
    x, mask = sample.constituents[:64], sample.mask[:64]

    def relu(a: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.maximum(a, 0)
        return out

    z = (x - w["norm.mean"]) / w["norm.std"]
    h = relu(relu(z @ w["phi.0.weight"] + w["phi.0.bias"]) @ w["phi.1.weight"] + w["phi.1.bias"])
    pooled = (h * mask[..., None]).sum(axis=1) / w["pool.scale"]
    logits = relu(pooled @ w["rho.0.weight"] + w["rho.0.bias"]) @ w["rho.1.weight"]
    logits += w["rho.1.bias"]
    np.testing.assert_allclose(model.forward(x, mask), logits, rtol=1e-4, atol=1e-5)


def test_bad_inputs_are_rejected(sample: JetSample) -> None:
    model = fitted_model(sample)
    with pytest.raises(InvalidArgumentError):
        model.forward(sample.constituents[:4, :, :9], sample.mask[:4])
    with pytest.raises(InvalidArgumentError):
        model.forward(sample.constituents[:4], sample.mask[:3])
    with pytest.raises(InvalidArgumentError):
        model.loss_and_grads(sample.constituents[:4], sample.mask[:4], np.array([0, 1, 2, 5]))


def test_roc_auc_hand_computed() -> None:
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    # class 1: positives {0.35, 0.8} beat negatives {0.1, 0.4} in 3 of 4 pairs; class 0 mirrors it
    assert roc_auc_ovr(y, np.stack([1 - p1, p1], axis=1)) == pytest.approx(0.75)
    # ties count one half: positives {0.5, 0.9} vs negatives {0.5, 0.2} -> (0.5 + 1 + 1 + 1) / 4
    y = np.array([0, 1, 0, 1])
    p1 = np.array([0.5, 0.5, 0.2, 0.9])
    assert roc_auc_ovr(y, np.stack([1 - p1, p1], axis=1)) == pytest.approx(0.875)
    perfect = np.eye(3)[[0, 1, 2, 2]]
    assert roc_auc_ovr(np.array([0, 1, 2, 2]), perfect) == 1.0
    assert roc_auc_ovr(np.array([0, 1, 2, 2]), 1 - perfect) == 0.0
    # a class absent from y is left out of the macro average
    assert roc_auc_ovr(np.array([0, 0, 1]), np.eye(3)[[0, 0, 1]]) == 1.0


def test_roc_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    proba = np.round(rng.random((300, 5)) + 0.3 * np.eye(5)[y], 1)  # coarse: many ties
    expected = []
    for c in range(5):
        pos, neg = proba[y == c, c], proba[y != c, c]
        diff = pos[:, None] - neg[None, :]
        expected.append(((diff > 0) + 0.5 * (diff == 0)).mean())
    assert roc_auc_ovr(y, proba) == pytest.approx(np.mean(expected), abs=1e-12)


def test_adam_first_step_has_size_lr() -> None:
    params = {"w.weight": np.array([1.0, -2.0, 3.0], np.float32)}
    opt = Adam(params, lr=0.1)
    opt.step(params, {"w.weight": np.array([5.0, -0.01, 0.0], np.float32)})
    np.testing.assert_allclose(params["w.weight"], [0.9, -1.9, 3.0], rtol=1e-5)


def test_short_training_run_learns() -> None:
    train_set, val_set = train_test_split(make_jets(2500, seed=21), test_fraction=0.2, seed=0)
    model = DeepSets.init(n_features=10, n_classes=len(CLASSES), hidden=16, seed=0)
    steps: list[tuple[int, dict[str, float]]] = []
    epochs: list[tuple[int, dict[str, float]]] = []
    result = train(
        model,
        train_set,
        val_set,
        epochs=4,
        batch_size=128,
        lr=1e-2,
        seed=0,
        on_step=lambda s, m: steps.append((s, m)),
        on_epoch=lambda e, m: epochs.append((e, m)),
    )
    assert isinstance(result, TrainResult)
    assert [s for s, _ in steps] == list(range(result.steps)) == list(range(4 * 16))
    assert all(set(m) == {"loss", "accuracy"} for _, m in steps)
    assert [e for e, _ in epochs] == [0, 1, 2, 3]
    assert all(set(m) == {"train_loss", "val_loss", "val_accuracy", "val_auc"} for _, m in epochs)
    first = np.mean([m["loss"] for _, m in steps[:5]])
    assert result.train_loss < 0.8 * first
    assert epochs[-1][1]["val_loss"] < epochs[0][1]["val_loss"]
    assert result.val_accuracy > 0.55  # chance is 0.2
    assert result.val_auc > 0.85
    assert result.confusion.shape == (5, 5)
    assert result.confusion.dtype == np.int64
    assert result.confusion.sum() == len(val_set)
    assert np.trace(result.confusion) == round(result.val_accuracy * len(val_set))
    assert result.elapsed_s > 0
    assert result.history[-1] == epochs[-1][1]
