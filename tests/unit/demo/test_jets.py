"""The synthetic jet generator: structure, determinism and the physics the tagger relies on."""

from __future__ import annotations

import numpy as np
import pytest

from luminary.demo._jets import CLASSES, FEATURES, JetSample, make_jets, train_test_split
from luminary.errors import InvalidArgumentError

LOG_PT, LOG_E, DETA, DPHI, DR, CHARGE, D0, DZ, IS_LEPTON, IS_PHOTON = range(10)


@pytest.fixture(scope="module")
def jets() -> JetSample:
    return make_jets(5000, seed=7)


def per_class(values: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {name: float(values[labels == c].mean()) for c, name in enumerate(CLASSES)}


def test_shapes_and_dtypes(jets: JetSample) -> None:
    n = len(jets)
    assert n == 5000
    assert len(FEATURES) == 10
    assert jets.constituents.shape == (n, 30, 10)
    assert jets.constituents.dtype == np.float32
    assert jets.mask.shape == (n, 30)
    assert jets.mask.dtype == np.bool_
    assert jets.n_constituents.dtype == np.int32
    assert jets.labels.dtype == np.int64
    for arr in (jets.jet_pt, jets.jet_eta, jets.jet_mass):
        assert arr.shape == (n,)
        assert arr.dtype == np.float32
    assert np.isfinite(jets.constituents).all()
    assert set(np.unique(jets.labels)) == set(range(len(CLASSES)))


def test_mask_is_consistent_with_padding(jets: JetSample) -> None:
    np.testing.assert_array_equal(jets.mask.sum(axis=1), jets.n_constituents)
    assert (jets.n_constituents >= 1).all()
    # real constituents come first, padding is all zeros
    assert not (jets.mask[:, 1:] & ~jets.mask[:, :-1]).any()
    assert (jets.constituents[~jets.mask] == 0).all()
    # ordered by pT, hardest first
    log_pt = np.where(jets.mask, jets.constituents[..., LOG_PT], -1e9)
    assert (np.diff(log_pt, axis=1)[jets.mask[:, 1:]] <= 0).all()


def test_max_constituents_is_respected() -> None:
    small = make_jets(300, max_constituents=8, seed=1)
    assert small.constituents.shape == (300, 8, 10)
    assert small.n_constituents.max() == 8


def test_deterministic_under_seed() -> None:
    a, b, c = make_jets(400, seed=3), make_jets(400, seed=3), make_jets(400, seed=4)
    for field in ("constituents", "mask", "labels", "jet_pt", "jet_mass"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.constituents, c.constituents)


@pytest.mark.parametrize("n", [1000, 1003])
def test_classes_are_balanced(n: int) -> None:
    counts = np.bincount(make_jets(n, seed=2).labels, minlength=len(CLASSES))
    assert counts.max() - counts.min() <= 1


def test_kinematic_ranges(jets: JetSample) -> None:
    assert np.abs(jets.jet_eta).max() <= 2.5 + 1e-3
    assert jets.jet_pt.min() > 25
    assert jets.jet_pt.max() < 550
    # falling spectrum: many more soft jets than hard ones
    assert (jets.jet_pt < 60).sum() > 5 * (jets.jet_pt > 120).sum() > 0
    x, m = jets.constituents, jets.mask
    np.testing.assert_allclose(x[..., DR][m], np.hypot(x[..., DETA], x[..., DPHI])[m], atol=1e-6)
    assert x[..., DR][m].max() < 0.6
    # log(E) = log(pT cosh(eta)) with eta = jet eta + deta
    eta = jets.jet_eta[:, None] + x[..., DETA]
    log_e = x[..., LOG_PT] + np.log(np.cosh(eta.astype(np.float64)))
    np.testing.assert_allclose(x[..., LOG_E][m], log_e[m], atol=1e-4)


def test_jet_four_vector_matches_constituents(jets: JetSample) -> None:
    x = jets.constituents[:500].astype(np.float64)
    m = jets.mask[:500]
    pt = np.where(m, np.exp(x[..., LOG_PT]), 0.0)
    deta, dphi = x[..., DETA], x[..., DPHI]
    # massless pair masses, written in differences only (numerically stable)
    pair = (
        pt[:, :, None]
        * pt[:, None, :]
        * (
            np.cosh(deta[:, :, None] - deta[:, None, :])
            - np.cos(dphi[:, :, None] - dphi[:, None, :])
        )
    )
    mass = np.sqrt(pair.sum(axis=(1, 2)))
    np.testing.assert_allclose(mass, jets.jet_mass[:500], rtol=1e-3, atol=1e-3)
    # the axis is the pT-weighted direction: sum of pT sin(dphi) vanishes, sum of pT cos = jet pT
    np.testing.assert_allclose((pt * np.sin(dphi)).sum(axis=1), 0.0, atol=1e-3)
    np.testing.assert_allclose((pt * np.cos(dphi)).sum(axis=1), jets.jet_pt[:500], rtol=1e-4)
    assert (jets.jet_mass[jets.labels == CLASSES.index("gluon")] > 1.0).all()


def test_multiplicity_depends_on_class(jets: JetSample) -> None:
    mean = per_class(jets.n_constituents.astype(float), jets.labels)
    assert mean["gluon"] > mean["light"] + 2
    assert mean["light"] > mean["charm"] > mean["bottom"] > mean["tau"]
    assert mean["tau"] < 7


def test_gluon_jets_are_wider_and_softer(jets: JetSample) -> None:
    x, m = jets.constituents, jets.mask
    pt = np.where(m, np.exp(x[..., LOG_PT]), 0.0)
    width = (pt * x[..., DR]).sum(axis=1) / pt.sum(axis=1)
    lead = pt[:, 0] / pt.sum(axis=1)
    w, z = per_class(width, jets.labels), per_class(lead, jets.labels)
    assert w["gluon"] > 1.3 * w["light"]
    assert w["tau"] < 0.5 * w["light"]
    assert z["gluon"] < z["light"] < z["tau"]


def test_heavy_flavour_has_displaced_tracks(jets: JetSample) -> None:
    x, m = jets.constituents, jets.mask
    n_disp = ((np.abs(x[..., D0]) > 3) & m).sum(axis=1)
    mean = per_class(n_disp.astype(float), jets.labels)
    tagged = per_class((n_disp > 0).astype(float), jets.labels)
    assert mean["bottom"] > 1.5 * mean["charm"] > 3 * mean["light"]
    assert tagged["bottom"] > 0.8
    assert 0.3 < tagged["charm"] < 0.8  # not a perfect tag: charm and light overlap
    assert tagged["light"] < 0.2
    assert tagged["gluon"] < 0.2
    leptons = per_class((x[..., IS_LEPTON].sum(axis=1) > 0).astype(float), jets.labels)
    assert leptons["bottom"] > leptons["charm"] > 2 * leptons["light"]


def test_particle_types_are_consistent(jets: JetSample) -> None:
    x, m = jets.constituents, jets.mask
    charge = x[..., CHARGE]
    assert set(np.unique(charge[m])) == {-1.0, 0.0, 1.0}
    neutral = m & (charge == 0)
    assert (x[..., D0][neutral] == 0).all()
    assert (x[..., DZ][neutral] == 0).all()
    assert (charge[x[..., IS_PHOTON] == 1] == 0).all()
    assert (charge[x[..., IS_LEPTON] == 1] != 0).all()
    tau = jets.labels == CLASSES.index("tau")
    np.testing.assert_array_equal(np.abs(charge[tau].sum(axis=1)), 1.0)
    assert (x[tau][..., IS_PHOTON].sum(axis=1) > 0).mean() > 0.4


def test_train_test_split() -> None:
    sample = make_jets(1000, seed=5)
    train, test = train_test_split(sample, test_fraction=0.2, seed=1)
    assert (len(train), len(test)) == (800, 200)
    merged = np.sort(np.concatenate([train.jet_pt, test.jet_pt]))
    np.testing.assert_array_equal(merged, np.sort(sample.jet_pt))
    again, _ = train_test_split(sample, test_fraction=0.2, seed=1)
    np.testing.assert_array_equal(train.constituents, again.constituents)
    assert train.constituents.shape[1:] == (30, 10)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 0.0001])
def test_train_test_split_rejects_bad_fractions(fraction: float) -> None:
    with pytest.raises(InvalidArgumentError):
        train_test_split(make_jets(50), test_fraction=fraction)


@pytest.mark.parametrize("kwargs", [{"n_jets": 0}, {"n_jets": 10, "max_constituents": 0}])
def test_make_jets_rejects_bad_sizes(kwargs: dict[str, int]) -> None:
    with pytest.raises(InvalidArgumentError):
        make_jets(**kwargs)
