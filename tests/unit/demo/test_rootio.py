"""The demo's jets through a ROOT TTree and back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from luminary.datasets._formats import inspect_file
from luminary.demo._jets import FEATURES, JetSample, make_jets
from luminary.errors import InvalidArgumentError

uproot = pytest.importorskip("uproot")
pytest.importorskip("awkward")

from luminary.demo._rootio import (  # noqa: E402
    CONSTITUENT_BRANCHES,
    JET_BRANCHES,
    read_jets_root,
    write_jets_root,
)

FIELDS = [f.name for f in dataclasses.fields(JetSample)]


@pytest.fixture(scope="module")
def sample() -> JetSample:
    return make_jets(2000, seed=1)


@pytest.fixture(scope="module")
def jets_file(sample: JetSample, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # small baskets, so reads cross basket boundaries
    return write_jets_root(
        sample, tmp_path_factory.mktemp("rootio") / "jets.root", basket_entries=300
    )


def assert_same(got: JetSample, want: JetSample) -> None:
    for name in FIELDS:
        g, w = getattr(got, name), getattr(want, name)
        assert g.dtype == w.dtype, name
        np.testing.assert_array_equal(g, w, err_msg=name)


def test_round_trip_is_exact(sample: JetSample, jets_file: Path) -> None:
    assert_same(read_jets_root(jets_file), sample)


def test_round_trip_in_small_steps(sample: JetSample, jets_file: Path) -> None:
    assert_same(read_jets_root([jets_file], step_size=333), sample)


@pytest.mark.parametrize(("start", "stop"), [(0, 1), (250, 1234), (1999, None), (2000, None)])
def test_entry_ranges(sample: JetSample, jets_file: Path, start: int, stop: int | None) -> None:
    got = read_jets_root(jets_file, entry_start=start, entry_stop=stop)
    assert_same(got, sample.subset(np.arange(start, 2000 if stop is None else stop)))


def test_several_files_read_as_one(sample: JetSample, tmp_path: Path) -> None:
    paths = [
        write_jets_root(sample.subset(np.arange(0, 700)), tmp_path / "a.root"),
        write_jets_root(sample.subset(np.arange(700, 2000)), tmp_path / "b.root"),
    ]
    assert_same(read_jets_root(paths), sample)
    got = read_jets_root(paths, entry_start=650, entry_stop=800)
    assert_same(got, sample.subset(np.arange(650, 800)))


def test_tree_layout(jets_file: Path) -> None:
    schema = inspect_file(jets_file)
    assert schema is not None
    (table,) = schema.tables
    assert (table.name, table.kind, table.entries) == ("jets", "ttree", 2000)
    types = {c.name: c.type for c in table.columns}
    assert list(types) == [*JET_BRANCHES, *CONSTITUENT_BRANCHES]
    assert tuple(f"c_{f}" for f in FEATURES) == CONSTITUENT_BRANCHES
    assert types["n_constituents"] == "int32"  # uproot's shared counter, named by us
    assert types["label"] == "int64"
    assert {types[b] for b in CONSTITUENT_BRANCHES} == {"var * float32"}
    with uproot.open(jets_file) as f:
        assert f.file.fCompress == 505  # ZSTD, level 5
        assert f["jets"]["c_log_pt"].num_baskets == 7


def test_fewer_constituents_clips(sample: JetSample, jets_file: Path) -> None:
    got = read_jets_root(jets_file, max_constituents=8)
    assert got.constituents.shape == (2000, 8, len(FEATURES))
    np.testing.assert_array_equal(got.constituents, sample.constituents[:, :8])
    np.testing.assert_array_equal(got.mask, sample.mask[:, :8])
    np.testing.assert_array_equal(got.n_constituents, np.minimum(sample.n_constituents, 8))


def test_other_compression_and_no_partial_file_left(sample: JetSample, tmp_path: Path) -> None:
    path = write_jets_root(sample, tmp_path / "z.root", compression="zlib", tree="t")
    assert_same(read_jets_root(path, tree="t"), sample)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.root"]
    with pytest.raises(InvalidArgumentError, match="unknown compression 'gzip'"):
        write_jets_root(sample, tmp_path / "y.root", compression="gzip")


def test_inconsistent_sample_is_refused(sample: JetSample, tmp_path: Path) -> None:
    bad = dataclasses.replace(sample, n_constituents=sample.n_constituents + 1)
    with pytest.raises(InvalidArgumentError, match="n_constituents disagrees"):
        write_jets_root(bad, tmp_path / "bad.root")
    assert not list(tmp_path.iterdir())
