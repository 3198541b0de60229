"""Synthetic, physics-shaped jets for the ``luminary demo`` jet-tagging classifier.

Five classes (:data:`CLASSES`), generated fully vectorised.  Each jet is built from massless
constituents around a nominal axis; the jet four-vector is then the sum of its constituents, so
``jet_pt``, ``jet_eta`` and ``jet_mass`` agree with the constituent features, and Δη, Δφ, ΔR are
measured from that summed axis.  What separates the classes (deliberately overlapping):

* multiplicity (Poisson, grows with jet pT): gluon > light > charm > bottom; tau 1 or 3 prongs,
  0/2/4 photons from π0 decays and a little soft neutral underlying event;
* fragmentation: momentum fractions from a Dirichlet (gamma) draw, harder (more uneven) for
  light and bottom leading particles, softer for gluons;
* width: ΔR ≈ kT / pT, with a wider kT for gluon and bottom jets, a narrow one for tau prongs;
* displacement: a few charged tracks with large signed d0/dz significance, more and larger in
  bottom than in charm jets (some light/gluon jets get a fake, V0-like one; tau prongs are
  mildly displaced); a soft lepton sometimes in heavy flavour;
* tau: prong charges sum to ±1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from luminary.errors import InvalidArgumentError

__all__ = ["CLASSES", "FEATURES", "JetSample", "make_jets", "train_test_split"]

CLASSES: tuple[str, ...] = ("light", "gluon", "charm", "bottom", "tau")
FEATURES: tuple[str, ...] = (
    "log_pt",
    "log_e",
    "deta",
    "dphi",
    "dr",
    "charge",
    "d0_sig",
    "dz_sig",
    "is_lepton",
    "is_photon",
)

_TAU = CLASSES.index("tau")
_R_GEN = 0.36  # constituents lie within this of the nominal axis: ΔR to the summed one ≲ 0.4
_PT_MIN, _PT_MAX, _PT_INDEX = 30.0, 500.0, 3.0  # dN/dpT ∝ pT^-index
_ETA_MAX = 2.5
_CONST_PT_MIN = 0.5  # GeV, every constituent has at least this

# Per-class tables, indexed by label (tau entries unused where tau is built separately).
_MULT_BASE = np.array([10.0, 14.0, 9.0, 8.0, 0.0])  # Poisson mean at pT = 30 GeV
_MULT_SLOPE = np.array([3.0, 4.5, 3.0, 3.0, 0.0])  # ... plus this per unit of ln(pT / 30)
_FRAG_ALPHA = np.array([0.50, 0.90, 0.60, 0.50, 2.0])  # gamma shape: smaller = harder leader
_KT = np.array([0.5, 0.8, 0.55, 0.8, 0.25])  # GeV, mean transverse momentum to the axis
_N_DISPLACED = np.array([0.08, 0.12, 1.3, 2.6, 0.0])  # Poisson mean of displaced tracks
_D0_SCALE = np.array([2.0, 2.0, 3.0, 6.0, 1.0])  # exponential scale of |d0 significance|
_P_LEPTON = np.array([0.02, 0.03, 0.12, 0.22, 0.0])
_P_CHARGED, _P_PHOTON = 0.62, 0.7  # hadron jets: charged fraction; photon share of neutrals

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class JetSample:
    """A batch of jets: per-constituent features (zero-padded) plus jet-level quantities."""

    constituents: F32  # (n, max_constituents, len(FEATURES))
    mask: NDArray[np.bool_]  # (n, max_constituents), True for a real constituent
    n_constituents: NDArray[np.int32]  # (n,)
    jet_pt: F32  # (n,) GeV
    jet_eta: F32  # (n,)
    jet_mass: F32  # (n,) GeV
    labels: NDArray[np.int64]  # (n,) index into CLASSES

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def max_constituents(self) -> int:
        return int(self.constituents.shape[1])

    def subset(self, index: NDArray[np.integer] | NDArray[np.bool_]) -> JetSample:
        """The jets selected by ``index`` (integer positions or a boolean mask)."""
        return JetSample(
            constituents=self.constituents[index],
            mask=self.mask[index],
            n_constituents=self.n_constituents[index],
            jet_pt=self.jet_pt[index],
            jet_eta=self.jet_eta[index],
            jet_mass=self.jet_mass[index],
            labels=self.labels[index],
        )


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        msg = f"{name} must be a positive integer, got {value!r}"
        raise InvalidArgumentError(msg)


def _jet_four_vector(
    pt: NDArray[np.float64], eta: NDArray[np.float64], phi: NDArray[np.float64]
) -> tuple[NDArray[np.float64], ...]:
    """(pT, eta, phi, mass) of the sum of massless constituents (zero pT = padding)."""
    px, py = (pt * np.cos(phi)).sum(axis=1), (pt * np.sin(phi)).sum(axis=1)
    pz, energy = (pt * np.sinh(eta)).sum(axis=1), (pt * np.cosh(eta)).sum(axis=1)
    jet_pt = np.hypot(px, py)
    mass2 = np.maximum(energy**2 - jet_pt**2 - pz**2, 0.0)
    return jet_pt, np.arcsinh(pz / jet_pt), np.arctan2(py, px), np.sqrt(mass2)


def make_jets(n_jets: int, *, max_constituents: int = 30, seed: int = 0) -> JetSample:
    """``n_jets`` synthetic jets, classes balanced to within one jet; deterministic in ``seed``."""
    _check_positive("n_jets", n_jets)
    _check_positive("max_constituents", max_constituents)
    n, m = int(n_jets), int(max_constituents)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n, dtype=np.int64) % len(CLASSES))
    tau = labels == _TAU
    tau_col = tau[:, None]

    # Jet-level: falling pT spectrum (inverse CDF of a power law), flat eta.
    a = 1.0 - _PT_INDEX
    u = rng.random(n)
    pt_nom = (_PT_MIN**a + u * (_PT_MAX**a - _PT_MIN**a)) ** (1.0 / a)
    eta_nom = rng.uniform(-_ETA_MAX, _ETA_MAX, n)  # the summed axis ends up here

    # Multiplicity and per-slot particle types.
    lam = _MULT_BASE[labels] + _MULT_SLOPE[labels] * np.log(pt_nom / _PT_MIN)
    mult_had = np.maximum(rng.poisson(lam), 2)
    n_prong = np.where(rng.random(n) < 0.72, 1, 3)
    n_pi0_photons = rng.choice(np.array([0, 2, 4]), size=n, p=[0.35, 0.45, 0.20])
    n_tau_core = n_prong + n_pi0_photons
    mult = np.minimum(np.where(tau, n_tau_core + rng.poisson(1.5, n), mult_had), m)
    slot = np.arange(m)[None, :]
    valid = slot < mult[:, None]

    prong = tau_col & (slot < n_prong[:, None])
    tau_photon = tau_col & ~prong & (slot < n_tau_core[:, None])
    tau_ue = tau_col & valid & (slot >= n_tau_core[:, None])
    charged_had = rng.random((n, m)) < _P_CHARGED
    charged = valid & np.where(tau_col, prong, charged_had)
    photon = valid & ~charged & np.where(tau_col, tau_photon, rng.random((n, m)) < _P_PHOTON)
    sign = rng.choice(np.array([-1.0, 1.0]), size=(n, 1))
    tau_charge = sign * np.where((slot == 2) & (n_prong[:, None] == 3), -1.0, 1.0)
    charge = np.where(tau_col, tau_charge, rng.choice(np.array([-1.0, 1.0]), size=(n, m)))
    charge = np.where(charged, charge, 0.0)

    # Momentum sharing: Dirichlet via normalised gamma draws, plus a per-constituent floor.
    weight = rng.gamma(_FRAG_ALPHA[labels][:, None], size=(n, m))
    weight = np.where(tau_ue, 0.02 * weight, weight) * valid
    share = weight / np.maximum(weight.sum(axis=1, keepdims=True), 1e-300)
    pt = (_CONST_PT_MIN + (pt_nom - _CONST_PT_MIN * mult)[:, None] * share) * valid

    # Angles: ΔR ~ kT / pT, soft-limited to the jet radius; tau underlying event fills the cone.
    kt = rng.gamma(2.0, _KT[labels][:, None] / 2.0, size=(n, m))
    dr_raw = np.where(tau_ue, _R_GEN * np.sqrt(rng.random((n, m))), kt / np.maximum(pt, 1e-9))
    dr = _R_GEN * np.tanh(dr_raw / _R_GEN)
    theta = rng.uniform(0.0, 2.0 * np.pi, (n, m))
    eta = (eta_nom[:, None] + dr * np.cos(theta)) * valid
    phi = dr * np.sin(theta) * valid

    # Order constituents by pT (padding last), then attach tracks' impact parameters.
    order = np.argsort(np.where(valid, -pt, np.inf), axis=1, kind="stable")
    pt, eta, phi, charge = (np.take_along_axis(v, order, axis=1) for v in (pt, eta, phi, charge))
    charged, photon = (np.take_along_axis(v, order, axis=1) for v in (charged, photon))
    charged_rank = np.cumsum(charged, axis=1) - 1
    n_disp = rng.poisson(_N_DISPLACED[labels])
    displaced = charged & (charged_rank < n_disp[:, None])
    life_sign = np.where(rng.random((n, m)) < 0.85, 1.0, -1.0)
    d0_tail = life_sign * (2.0 + rng.exponential(_D0_SCALE[labels][:, None], (n, m)))
    d0 = rng.standard_normal((n, m))
    d0 = np.where(displaced, d0_tail, d0)
    d0 = np.where(tau_col & charged, d0 + life_sign * rng.exponential(_D0_SCALE[_TAU], (n, m)), d0)
    dz = np.where(displaced, 0.7 * d0, 0.0) + rng.standard_normal((n, m))
    d0, dz = d0 * charged, dz * charged
    has_lepton = rng.random(n) < _P_LEPTON[labels]
    lepton_rank = rng.integers(0, 3, n)
    lepton = charged & has_lepton[:, None] & (charged_rank == lepton_rank[:, None])

    # Jet = sum of massless constituents (jet phi nominally 0); a longitudinal boost then puts
    # the summed axis back at the drawn eta, so |jet_eta| stays inside the acceptance.
    valid = np.take_along_axis(valid, order, axis=1)
    jet_pt, jet_eta, jet_phi, jet_mass = _jet_four_vector(pt, eta, phi)
    eta = (eta + (eta_nom - jet_eta)[:, None]) * valid
    jet_pt, jet_eta, jet_phi, jet_mass = _jet_four_vector(pt, eta, phi)

    deta = (eta - jet_eta[:, None]) * valid
    dphi = (np.mod(phi - jet_phi[:, None] + np.pi, 2.0 * np.pi) - np.pi) * valid
    feats = np.zeros((n, m, len(FEATURES)), dtype=np.float32)
    safe_pt = np.where(valid, pt, 1.0)
    feats[..., 0] = np.log(safe_pt)
    feats[..., 1] = np.log(safe_pt * np.cosh(eta))
    feats[..., 2] = deta
    feats[..., 3] = dphi
    feats[..., 4] = np.hypot(deta, dphi)
    feats[..., 5] = charge
    feats[..., 6] = d0
    feats[..., 7] = dz
    feats[..., 8] = lepton
    feats[..., 9] = photon
    feats[..., :2] *= valid[..., None]
    return JetSample(
        constituents=feats,
        mask=valid,
        n_constituents=mult.astype(np.int32),
        jet_pt=jet_pt.astype(np.float32),
        jet_eta=jet_eta.astype(np.float32),
        jet_mass=jet_mass.astype(np.float32),
        labels=labels,
    )


def train_test_split(
    sample: JetSample, test_fraction: float = 0.2, seed: int = 0
) -> tuple[JetSample, JetSample]:
    """Shuffle ``sample`` and split it into ``(train, test)``; test gets ``round(n * fraction)``."""
    if not 0.0 < test_fraction < 1.0:
        msg = f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}"
        raise InvalidArgumentError(msg)
    n = len(sample)
    n_test = round(n * test_fraction)
    if n_test < 1 or n_test >= n:
        msg = (
            f"test_fraction={test_fraction!r} of {n} jets leaves an empty train or test set; "
            "generate more jets or change the fraction"
        )
        raise InvalidArgumentError(msg)
    perm = np.random.default_rng(seed).permutation(n)
    return sample.subset(perm[n_test:]), sample.subset(perm[:n_test])
