"""Chunked reading of one table across a list of ROOT, Parquet or HDF5 files, for training.

The files are one logical table: entry ``i`` is row ``i`` of the concatenation, in file order.
Batches lie on a fixed grid, ``[entry_start + k * step_size, entry_start + (k + 1) * step_size)``
clipped to ``entry_stop``, whatever the file boundaries (a batch that straddles two files is
stitched together), so the same arguments always give the same batches.  Only the files and the
parts of files that overlap ``[entry_start, entry_stop)`` are read (files before it are opened
for their entry count only), and no more than about one batch is held in memory at a time.

Column representations in :attr:`Batch.arrays`:

* flat and fixed-size columns (HDF5 ``(n, 30, 10)``, ROOT ``float[3]``, Parquet fixed-size
  lists): NumPy arrays of shape ``(rows, ...)``;
* variable-length columns padded with ``pad_to``: a NumPy ``(rows, pad_to)`` array filled with
  ``pad_value`` (cast to the column's dtype), plus a boolean ``f"{name}_mask"`` array, and the
  number of values cut off in :attr:`Batch.clipped`;
* other variable-length columns: with ``library="ak"`` Awkward Arrays; with ``library="np"``
  object arrays holding one NumPy array per row (nested lists, records and strings that NumPy
  cannot hold come back as object arrays of Python objects).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray

from luminary._optional import require
from luminary.datasets._formats import (
    UNKNOWN_TYPE,
    Column,
    Table,
    detect_format,
    hdf5_tables,
    is_simple_jagged,
    normalize_hdf5_table,
    open_root,
    opened,
    parquet_table,
    reading,
    require_format,
    root_tables,
)
from luminary.errors import InvalidArgumentError, NotFoundError, nearest

__all__ = ["Batch", "iterate", "shard_range"]

Library = Literal["np", "ak"]
_MAX_LISTED = 12


@dataclass(frozen=True)
class Batch:
    """Rows ``[start, stop)`` of the table (global over the file list)."""

    arrays: dict[str, Any]
    start: int
    stop: int
    clipped: dict[str, int]  # per padded column: values dropped by pad_to in this batch

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class _Ragged:
    """One level of variable-length numbers: ``counts[i]`` values per row, flattened."""

    counts: NDArray[np.int64]
    values: NDArray[Any]


Piece: TypeAlias = Any  # a NumPy array, a _Ragged, or an Awkward Array


# --------------------------------------------------------------------------- public API


def shard_range(n_entries: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous ``[start, stop)`` of ``n_entries`` that worker ``rank`` of ``world_size``
    reads: sizes differ by at most one, and the ranges tile ``[0, n_entries)`` in rank order."""
    for name, value in (("n_entries", n_entries), ("rank", rank), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            msg = f"{name} must be an integer, got {value!r}"
            raise InvalidArgumentError(msg)
    if n_entries < 0:
        msg = f"n_entries must be >= 0, got {n_entries}"
        raise InvalidArgumentError(msg)
    if world_size < 1:
        msg = f"world_size must be >= 1, got {world_size}"
        raise InvalidArgumentError(msg)
    if not 0 <= rank < world_size:
        msg = f"rank must be in [0, {world_size}) for world_size={world_size}, got {rank}"
        raise InvalidArgumentError(msg)
    base, extra = divmod(int(n_entries), int(world_size))
    start = int(rank) * base + min(int(rank), extra)
    return start, start + base + (1 if rank < extra else 0)


def iterate(
    files: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    table: str | None = None,
    columns: Sequence[str] | None = None,
    step_size: int = 100_000,
    entry_start: int = 0,
    entry_stop: int | None = None,
    pad_to: int | Mapping[str, int] | None = None,
    pad_value: float = 0.0,
    library: Library = "np",
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[Batch]:
    """Batches of ``step_size`` rows of ``table`` over the concatenation of ``files``.

    ``table`` defaults to the only TTree/RNTuple of a ROOT file, the Parquet table, or for HDF5
    the root group's datasets that share a first dimension (``"/"``); with several candidates
    the error lists them.  ``columns`` defaults to all.  ``entry_start``/``entry_stop`` are
    global row indices (see :func:`shard_range`).  ``pad_to`` pads and clips variable-length
    columns (an int: every one selected; a mapping: those named).  All files must have the same
    format and hold ``table`` with the selected columns.

    Arguments are checked when called; files are opened as the iterator advances.  A missing
    table or column raises NotFoundError with the nearest names, an unreadable file
    InvalidArgumentError naming it.
    """
    paths = [os.fspath(files)] if isinstance(files, str | os.PathLike) else list(files)
    paths = [os.fspath(p) for p in paths]
    if not paths:
        msg = "files is empty; pass at least one ROOT, Parquet or HDF5 file"
        raise InvalidArgumentError(msg)
    _check_int("step_size", step_size, minimum=1)
    _check_int("entry_start", entry_start, minimum=0)
    if entry_stop is not None:
        _check_int("entry_stop", entry_stop, minimum=0)
        if entry_stop < entry_start:
            msg = f"entry_stop ({entry_stop}) is before entry_start ({entry_start})"
            raise InvalidArgumentError(msg)
    if library not in ("np", "ak"):
        msg = f"library must be 'np' or 'ak', got {library!r}"
        raise InvalidArgumentError(msg)
    if library == "ak":
        require("awkward", "root", "library='ak'")
    if columns is not None:
        if isinstance(columns, str):
            columns = [columns]
        if not columns:
            msg = "columns is empty; pass None for all columns, or the names to read"
            raise InvalidArgumentError(msg)
        duplicates = sorted({c for c in columns if list(columns).count(c) > 1})
        if duplicates:
            msg = f"columns lists {', '.join(map(repr, duplicates))} more than once"
            raise InvalidArgumentError(msg)
    if isinstance(pad_to, Mapping):
        for name, n in pad_to.items():
            _check_int(f"pad_to[{name!r}]", n, minimum=1)
    elif pad_to is not None:
        _check_int("pad_to", pad_to, minimum=1)
    options = _Options(
        table=table,
        columns=None if columns is None else list(columns),
        step=int(step_size),
        start=int(entry_start),
        stop=None if entry_stop is None else int(entry_stop),
        pad_to=dict(pad_to) if isinstance(pad_to, Mapping) else pad_to,
        pad_value=pad_value,
        library=library,
        storage_options=storage_options,
    )
    return _iterate(paths, options)


# --------------------------------------------------------------------------- orchestration


@dataclass(frozen=True)
class _Options:
    table: str | None
    columns: list[str] | None
    step: int
    start: int
    stop: int | None
    pad_to: int | dict[str, int] | None
    pad_value: float
    library: Library
    storage_options: Mapping[str, Any] | None


@dataclass(frozen=True)
class _Plan:
    """What the first file settled: format, table, columns and padding."""

    fmt: str
    table: str
    columns: tuple[Column, ...]
    pad: dict[str, int]


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        msg = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise InvalidArgumentError(msg)


def _iterate(paths: list[str], opts: _Options) -> Iterator[Batch]:
    plan: _Plan | None = None
    offset = 0  # global index of the current file's first row
    pending: list[dict[str, Piece]] = []
    pending_start = opts.start
    for path in paths:
        if opts.stop is not None and offset >= opts.stop:
            break
        with _open_table(path, plan, opts) as (plan, reader):
            n = reader.entries
            lo = max(opts.start, offset)
            hi = offset + n if opts.stop is None else min(opts.stop, offset + n)
            if lo < hi:
                first = min(hi, _next_boundary(lo, opts)) - offset
                pieces = reader.read(lo - offset, first, hi - offset)
                for a, b in _ranges(lo - offset, hi - offset, first, opts.step):
                    piece = next(pieces, None)
                    rows = None if piece is None else _rows(piece)
                    if piece is None or rows != b - a:
                        msg = (
                            f"{path}: expected {b - a} rows of table {plan.table!r} for entries "
                            f"[{a}, {b}), got {rows or 0}; is the file truncated?"
                        )
                        raise InvalidArgumentError(msg)
                    if not pending:
                        pending_start = offset + a
                    pending.append(piece)
                    end = offset + b
                    if (end - opts.start) % opts.step == 0 or end == opts.stop:
                        yield _batch(pending, pending_start, end, plan, opts)
                        pending = []
            offset += n
    if pending and plan is not None:
        stop = pending_start + sum(_rows(p) for p in pending)
        yield _batch(pending, pending_start, stop, plan, opts)


def _next_boundary(entry: int, opts: _Options) -> int:
    return opts.start + ((entry - opts.start) // opts.step + 1) * opts.step


def _ranges(a: int, b: int, first_stop: int, step: int) -> Iterator[tuple[int, int]]:
    """``[a, first_stop)``, then ``step``-sized ranges up to ``b`` (the last may be short)."""
    yield a, first_stop
    for lo in range(first_stop, b, step):
        yield lo, min(b, lo + step)


def _rows(piece: dict[str, Piece]) -> int:
    first = next(iter(piece.values()))
    return len(first.counts) if isinstance(first, _Ragged) else len(first)


# --------------------------------------------------------------------------- opening a table


class _Reader:
    """One table of one open file: ``read(a, first, b)`` yields the pieces ``[a, first)``, then
    ``step``-sized pieces up to ``b`` (local entry numbers), as :func:`_ranges` lists them."""

    entries: int

    def read(self, a: int, first: int, b: int) -> Iterator[dict[str, Piece]]:
        raise NotImplementedError


@contextmanager
def _open_table(path: str, plan: _Plan | None, opts: _Options) -> Iterator[tuple[_Plan, _Reader]]:
    with opened(path, opts.storage_options) as (source, head):
        fmt = detect_format(path, head)
        if fmt is None:
            msg = f"{path}: not a ROOT, Parquet or HDF5 file (unknown magic bytes {head!r})"
            raise InvalidArgumentError(msg)
        if plan is not None and fmt != plan.fmt:
            msg = f"{path}: is a {fmt} file, but the first file is {plan.fmt}; do not mix formats"
            raise InvalidArgumentError(msg)
        module = require_format(fmt, f"Reading {path}")
        with reading(path, fmt):
            if fmt == "root":
                with open_root(source, path) as rfile:
                    tables = root_tables(rfile)
                    plan = _make_plan(path, fmt, tables, plan, opts)
                    yield plan, _RootReader(path, rfile[plan.table], plan, opts)
            elif fmt == "parquet":
                with module.ParquetFile(source) as pfile:
                    plan = _make_plan(path, fmt, [parquet_table(pfile)], plan, opts)
                    yield plan, _ParquetReader(pfile, plan, opts)
            else:
                with module.File(source, "r") as hfile:
                    layout = hdf5_tables(hfile)
                    plan = _make_plan(path, fmt, [t for t, _ in layout], plan, opts)
                    sources = next(s for t, s in layout if t.name == plan.table)
                    entries = next(t.entries for t, _ in layout if t.name == plan.table)
                    yield plan, _Hdf5Reader(hfile, entries, sources, plan, opts)


def _make_plan(
    path: str, fmt: str, tables: list[Table], plan: _Plan | None, opts: _Options
) -> _Plan:
    if plan is not None:  # a later file: same table, same columns
        found = _find_table(path, fmt, tables, plan.table)
        have = {c.name for c in found.columns}
        for column in plan.columns:
            if column.name not in have:
                hint = nearest(column.name, have, "column")
                msg = f"{path}: table {plan.table!r} has no column {column.name!r}; {hint}"
                raise NotFoundError(msg)
        return plan
    chosen = _default_table(path, fmt, tables) if opts.table is None else None
    found = chosen or _find_table(path, fmt, tables, opts.table or "")
    by_name = {c.name: c for c in found.columns}
    if opts.columns is None:
        columns = tuple(c for c in found.columns if not c.type.startswith(UNKNOWN_TYPE))
    else:
        for name in opts.columns:
            if name not in by_name:
                hint = nearest(name, by_name, "column")
                msg = f"{path}: table {found.name!r} has no column {name!r}; {hint}"
                raise NotFoundError(msg)
        columns = tuple(by_name[name] for name in opts.columns)
    return _Plan(fmt=fmt, table=found.name, columns=columns, pad=_pad_plan(path, columns, opts))


def _find_table(path: str, fmt: str, tables: list[Table], name: str) -> Table:
    want = normalize_hdf5_table(name) if fmt == "hdf5" else name
    for t in tables:
        if t.name == want:
            return t
    hint = nearest(want, [t.name for t in tables], "table")
    msg = f"{path}: no table {name!r}; {hint}"
    raise NotFoundError(msg)


def _default_table(path: str, fmt: str, tables: list[Table]) -> Table:
    if len(tables) == 1:
        return tables[0]
    if fmt == "hdf5":
        groups = [t for t in tables if t.kind == "hdf5-group"]
        root = [t for t in groups if t.name == "/"]
        if root or len(groups) == 1:
            return (root or groups)[0]
    if not tables:
        msg = f"{path}: holds no table (no TTree, RNTuple or dataset) to read"
        raise InvalidArgumentError(msg)
    names = [f"{t.name!r} ({t.kind}, {t.entries} entries)" for t in tables]
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    msg = (
        f"{path}: holds {len(tables)} tables, pass table= one of: "
        f"{', '.join(names[:_MAX_LISTED])}{more}"
    )
    raise InvalidArgumentError(msg)


def _pad_plan(path: str, columns: tuple[Column, ...], opts: _Options) -> dict[str, int]:
    by_name = {c.name: c for c in columns}
    if opts.pad_to is None:
        pad: dict[str, int] = {}
    elif isinstance(opts.pad_to, dict):
        for name in opts.pad_to:
            if name not in by_name:
                hint = nearest(name, by_name, "selected column")
                msg = f"pad_to names {name!r}, which is not a selected column; {hint}"
                raise NotFoundError(msg)
        pad = {name: int(n) for name, n in opts.pad_to.items()}
    else:
        pad = {c.name: int(opts.pad_to) for c in columns if c.jagged}
    for name in pad:
        column = by_name[name]
        if not is_simple_jagged(column.type):
            msg = (
                f"{path}: cannot pad column {name!r} of type {column.type!r}: pad_to pads one "
                "level of variable-length numbers (like 'var * float32'); pass pad_to as a "
                "mapping of the columns to pad"
            )
            raise InvalidArgumentError(msg)
        if f"{name}_mask" in by_name:
            msg = f"padding {name!r} would add {name + '_mask'!r}, which is already a column"
            raise InvalidArgumentError(msg)
    return pad


# --------------------------------------------------------------------------- ROOT


class _RootReader(_Reader):
    def __init__(self, path: str, tree: Any, plan: _Plan, opts: _Options) -> None:
        self.path, self.tree, self.plan, self.opts = path, tree, plan, opts
        self.entries = int(tree.num_entries)
        self.names = [c.name for c in plan.columns]

    def read(self, a: int, first: int, b: int) -> Iterator[dict[str, Piece]]:
        if first - a < self.opts.step or first >= b:  # a short first piece, or the only one
            yield self._arrays(a, first)
            a = first
        if a < b:
            chunks = self.tree.iterate(
                self.names,
                entry_start=a,
                entry_stop=b,
                step_size=self.opts.step,
                library="ak",
                how=dict,
            )
            for arrays in chunks:
                yield self._convert(arrays)

    def _arrays(self, a: int, b: int) -> dict[str, Piece]:
        arrays = self.tree.arrays(self.names, entry_start=a, entry_stop=b, library="ak", how=dict)
        return self._convert(arrays)

    def _convert(self, arrays: dict[str, Any]) -> dict[str, Piece]:
        return {
            c.name: _from_awkward(arrays[c.name], c, self.opts.library) for c in self.plan.columns
        }


def _from_awkward(array: Any, column: Column, library: Library) -> Piece:
    ak = require("awkward", "root", "Reading ROOT")
    if is_simple_jagged(column.type):
        try:
            counts = np.asarray(ak.to_numpy(ak.num(array, axis=1)), dtype=np.int64)
            values = np.asarray(ak.to_numpy(ak.flatten(array, axis=1)))
            return _Ragged(counts, values)
        except (ValueError, TypeError):
            pass  # missing values: handled like any other irregular column
    elif not column.jagged:
        try:
            return np.asarray(ak.to_numpy(array))
        except (ValueError, TypeError):
            pass
    # Never ak.to_numpy on a jagged column: a chunk that happens to be regular would come back
    # as an (n, k) array, and the next one as objects.
    return array if library == "ak" else _object_array(array.to_list())


def _object_array(rows: Sequence[Any]) -> NDArray[np.object_]:
    out = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows):
        out[i] = row
    return out


# --------------------------------------------------------------------------- Parquet


class _ParquetReader(_Reader):
    def __init__(self, pfile: Any, plan: _Plan, opts: _Options) -> None:
        self.pfile, self.plan, self.opts = pfile, plan, opts
        meta = pfile.metadata
        self.entries = int(meta.num_rows)
        self.group_starts = np.cumsum(
            [0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        )

    def read(self, a: int, first: int, b: int) -> Iterator[dict[str, Piece]]:
        pa = require("pyarrow", "parquet", "Reading Parquet")
        group = int(np.searchsorted(self.group_starts, a, side="right")) - 1
        end_group = int(np.searchsorted(self.group_starts, b, side="left"))
        skip = a - int(self.group_starts[group])
        batches = self.pfile.iter_batches(
            batch_size=self.opts.step,
            row_groups=list(range(group, end_group)),
            columns=[c.name for c in self.plan.columns],
        )
        buffer: list[Any] = []
        buffered = 0
        for lo, hi in _ranges(a, b, first, self.opts.step):
            while buffered < hi - lo:
                batch = next(batches, None)
                if batch is None:
                    return  # fewer rows than the footer says: the caller reports it
                if skip:
                    cut = min(skip, batch.num_rows)
                    batch, skip = batch.slice(cut), skip - cut
                buffer.append(batch)
                buffered += batch.num_rows
            table = pa.Table.from_batches(buffer)
            rest = table.slice(hi - lo)
            table = table.slice(0, hi - lo)
            buffer, buffered = rest.to_batches(), rest.num_rows
            yield {
                c.name: _from_arrow(table.column(c.name), c, self.opts.library)
                for c in self.plan.columns
            }


def _from_arrow(column: Any, spec: Column, library: Library) -> Piece:
    pa = require("pyarrow", "parquet", "Reading Parquet")
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    types = pa.types
    t = array.type
    if is_simple_jagged(spec.type) and (types.is_list(t) or types.is_large_list(t)):
        pc = require("pyarrow.compute", "parquet", "Reading Parquet")
        counts = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False)
        values = array.flatten().to_numpy(zero_copy_only=False)
        return _Ragged(np.asarray(counts, dtype=np.int64), np.asarray(values))
    if types.is_fixed_size_list(t) and array.null_count == 0:
        shape = [len(array)]
        inner = array
        while types.is_fixed_size_list(inner.type) and inner.null_count == 0:
            shape.append(inner.type.list_size)
            inner = inner.flatten()
        if not types.is_nested(inner.type):
            return np.asarray(inner.to_numpy(zero_copy_only=False)).reshape(shape)
    if types.is_nested(t) and library == "ak":
        ak = require("awkward", "root", "library='ak'")
        return ak.from_arrow(array, highlevel=True)
    return np.asarray(array.to_numpy(zero_copy_only=False))


# --------------------------------------------------------------------------- HDF5


class _Hdf5Reader(_Reader):
    def __init__(
        self,
        hfile: Any,
        entries: int,
        sources: dict[str, tuple[str, str | None]],
        plan: _Plan,
        opts: _Options,
    ) -> None:
        self.hfile, self.entries, self.plan, self.opts = hfile, entries, plan, opts
        self.h5py = require("h5py", "hdf5", "Reading HDF5")
        self.sources = {c.name: sources[c.name] for c in plan.columns}

    def read(self, a: int, first: int, b: int) -> Iterator[dict[str, Piece]]:
        for lo, hi in _ranges(a, b, first, self.opts.step):
            yield {c.name: self._column(c, lo, hi) for c in self.plan.columns}

    def _column(self, column: Column, a: int, b: int) -> Piece:
        dpath, field = self.sources[column.name]
        dset = self.hfile[dpath]
        if field is not None:
            return np.asarray(dset.fields(field)[a:b])
        string = self.h5py.check_string_dtype(dset.dtype)
        if string is not None and string.length is None:
            return np.asarray(dset.asstr()[a:b] if string.encoding == "utf-8" else dset[a:b])
        data = np.asarray(dset[a:b])
        if data.dtype != object or not is_simple_jagged(column.type):
            return data
        base = self.h5py.check_vlen_dtype(dset.dtype)
        counts = np.fromiter((len(row) for row in data), dtype=np.int64, count=len(data))
        values = np.concatenate(list(data)) if len(data) else np.empty(0, dtype=base)
        return _Ragged(counts, values.astype(base, copy=False))


# --------------------------------------------------------------------------- assembling batches


def _concat(pieces: list[Piece]) -> Piece:
    if len(pieces) == 1:
        return pieces[0]
    first = pieces[0]
    if isinstance(first, _Ragged):
        raggeds: list[_Ragged] = pieces
        return _Ragged(
            np.concatenate([p.counts for p in raggeds]),
            np.concatenate([p.values for p in raggeds]),
        )
    if isinstance(first, np.ndarray):
        return np.concatenate(pieces)
    ak = require("awkward", "root", "Reading ROOT")
    return ak.concatenate(pieces)


def _batch(
    pending: list[dict[str, Piece]], start: int, stop: int, plan: _Plan, opts: _Options
) -> Batch:
    arrays: dict[str, Any] = {}
    clipped: dict[str, int] = {}
    for column in plan.columns:
        name = column.name
        piece = _concat([p[name] for p in pending])
        if name in plan.pad:
            if not isinstance(piece, _Ragged):
                msg = f"column {name!r} ({column.type}) could not be read as padded numbers"
                raise InvalidArgumentError(msg)
            arrays[name], arrays[f"{name}_mask"], clipped[name] = _pad(
                piece, plan.pad[name], opts.pad_value
            )
        elif isinstance(piece, _Ragged):
            arrays[name] = _unpadded(piece, opts.library)
        else:
            arrays[name] = piece
    return Batch(arrays=arrays, start=start, stop=stop, clipped=clipped)


def _pad(
    ragged: _Ragged, length: int, pad_value: float
) -> tuple[NDArray[Any], NDArray[np.bool_], int]:
    counts, values = ragged.counts, ragged.values
    n = len(counts)
    kept = np.minimum(counts, length)
    mask = np.arange(length)[None, :] < kept[:, None]
    out = np.full((n, length), pad_value, dtype=values.dtype)
    over = counts > length
    if over.any():
        starts = np.zeros(n, dtype=np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        position = np.arange(len(values)) - np.repeat(starts, counts)
        out[mask] = values[position < length]
    else:
        out[mask] = values
    return out, mask, int((counts - kept).sum())


def _unpadded(ragged: _Ragged, library: Library) -> Any:
    if library == "ak":
        ak = require("awkward", "root", "library='ak'")
        return ak.unflatten(ragged.values, ragged.counts)
    bounds = np.cumsum(ragged.counts)[:-1]
    return _object_array(np.split(ragged.values, bounds))
