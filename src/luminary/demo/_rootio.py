"""The demo's jets as a ROOT file, the way an analysis would store them.

One TTree, one entry per jet:

* jet-level branches ``jet_pt``, ``jet_eta``, ``jet_mass`` (float32) and ``label`` (int64);
* ``n_constituents`` (int32), the counter of the constituent branches;
* one variable-length branch per feature in :data:`FEATURES`, named ``c_<feature>``
  (``c_log_pt``, ``c_deta``, ...), each ``var * float32`` holding the jet's real constituents
  in order.

The constituents are written from ``sample.mask``; :func:`read_jets_root` pads them back to
``max_constituents`` at the front of each row, so a sample whose mask is a prefix (as
:func:`make_jets` makes them) round-trips exactly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from luminary._optional import require
from luminary.datasets import iterate
from luminary.demo._jets import FEATURES, JetSample
from luminary.errors import InvalidArgumentError

__all__ = ["CONSTITUENT_BRANCHES", "JET_BRANCHES", "read_jets_root", "write_jets_root"]

JET_BRANCHES: tuple[str, ...] = ("jet_pt", "jet_eta", "jet_mass", "label", "n_constituents")
CONSTITUENT_BRANCHES: tuple[str, ...] = tuple(f"c_{f}" for f in FEATURES)
_COUNTER = "n_constituents"
_RECORD = "c"  # uproot writes the record's fields as c_<field>, sharing one counter
_COMPRESSION = {"zstd": ("ZSTD", 5), "zlib": ("ZLIB", 1), "lzma": ("LZMA", 7), "lz4": ("LZ4", 4)}


def write_jets_root(
    sample: JetSample,
    path: str | os.PathLike[str],
    *,
    tree: str = "jets",
    compression: str | None = "zstd",
    compression_level: int | None = None,
    basket_entries: int = 10_000,
) -> Path:
    """Write ``sample`` as the TTree ``tree`` of a new ROOT file at ``path`` (replacing it).

    ``compression`` is ``"zstd"`` (level 5 unless ``compression_level``), ``"zlib"``,
    ``"lzma"``, ``"lz4"`` or None; every ``basket_entries`` jets make one basket per branch.
    The file is written next to ``path`` and renamed into place when complete.
    """
    uproot = require("uproot", "root", "Writing ROOT files")
    ak = require("awkward", "root", "Writing ROOT files")
    target = Path(path)
    codec = _codec(uproot, compression, compression_level)
    if (
        isinstance(basket_entries, bool)
        or not isinstance(basket_entries, int)
        or basket_entries < 1
    ):
        msg = f"basket_entries must be a positive integer, got {basket_entries!r}"
        raise InvalidArgumentError(msg)
    n, _, n_features = sample.constituents.shape
    if n_features != len(FEATURES):
        msg = f"sample has {n_features} constituent features, expected {len(FEATURES)}"
        raise InvalidArgumentError(msg)
    counts = sample.mask.sum(axis=1, dtype=np.int64)
    if not np.array_equal(counts, sample.n_constituents):
        bad = int(np.flatnonzero(counts != sample.n_constituents)[0])
        msg = (
            f"sample.n_constituents disagrees with sample.mask (jet {bad}: "
            f"{int(sample.n_constituents[bad])} vs {int(counts[bad])} real constituents)"
        )
        raise InvalidArgumentError(msg)

    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    values = sample.constituents[sample.mask].astype(np.float32, copy=False)  # (total, F)
    record = ak.contents.RecordArray(
        [ak.contents.NumpyArray(np.ascontiguousarray(values[:, j])) for j in range(n_features)],
        list(FEATURES),
    )
    constituents = ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))
    jets: dict[str, NDArray[Any]] = {
        "jet_pt": np.asarray(sample.jet_pt, dtype=np.float32),
        "jet_eta": np.asarray(sample.jet_eta, dtype=np.float32),
        "jet_mass": np.asarray(sample.jet_mass, dtype=np.float32),
        "label": np.asarray(sample.labels, dtype=np.int64),
    }
    branch_types: dict[str, Any] = {name: array.dtype for name, array in jets.items()}
    branch_types[_RECORD] = constituents.type.content

    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with uproot.recreate(partial, compression=codec) as rfile:
            ttree = rfile.mktree(
                tree,
                branch_types,
                title="luminary demo jets",
                counter_name=lambda counted: _COUNTER if counted == _RECORD else "n" + counted,
            )
            for lo in range(0, n, basket_entries):
                hi = min(n, lo + basket_entries)
                chunk = {name: array[lo:hi] for name, array in jets.items()}
                chunk[_RECORD] = constituents[lo:hi]
                ttree.extend(chunk)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _codec(uproot: Any, compression: str | None, level: int | None) -> Any:
    if compression is None or compression == "none":
        return None
    if compression not in _COMPRESSION:
        valid = ", ".join([*_COMPRESSION, "none"])
        msg = f"unknown compression {compression!r}; valid: {valid}"
        raise InvalidArgumentError(msg)
    name, default = _COMPRESSION[compression]
    return getattr(uproot, name)(default if level is None else level)


def read_jets_root(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    max_constituents: int = 30,
    entry_start: int = 0,
    entry_stop: int | None = None,
    tree: str | None = "jets",
    step_size: int = 100_000,
) -> JetSample:
    """Jets ``[entry_start, entry_stop)`` of the concatenated files, as a :class:`JetSample`.

    Constituents beyond ``max_constituents`` are dropped (the leading ones are kept) and
    ``n_constituents`` is capped to match the mask.
    """
    names = {f"c_{f}": max_constituents for f in FEATURES}
    columns = [*JET_BRANCHES, *names]
    parts: dict[str, list[Any]] = {name: [] for name in [*columns, "mask"]}
    batches = iterate(
        paths,
        table=tree,
        columns=columns,
        step_size=step_size,
        entry_start=entry_start,
        entry_stop=entry_stop,
        pad_to=names,
    )
    for batch in batches:
        for name in columns:
            parts[name].append(batch.arrays[name])
        parts["mask"].append(batch.arrays[f"{CONSTITUENT_BRANCHES[0]}_mask"])

    def joined(name: str, dtype: Any, shape: tuple[int, ...] = ()) -> Any:
        if not parts[name]:
            return np.zeros((0, *shape), dtype=dtype)
        return np.concatenate(parts[name]).astype(dtype, copy=False)

    m = int(max_constituents)
    constituents = np.stack([joined(name, np.float32, (m,)) for name in CONSTITUENT_BRANCHES], -1)
    return JetSample(
        constituents=constituents,
        mask=joined("mask", np.bool_, (m,)),
        n_constituents=np.minimum(joined("n_constituents", np.int32), m).astype(np.int32),
        jet_pt=joined("jet_pt", np.float32),
        jet_eta=joined("jet_eta", np.float32),
        jet_mass=joined("jet_mass", np.float32),
        labels=joined("label", np.int64),
    )
