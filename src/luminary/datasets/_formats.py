"""What a data file holds: its format (by magic bytes), its tables, their columns and entry counts.

Three formats are understood, each through an optional package imported only when needed:

* ROOT (``uproot``, extra ``root``): every TTree (branches, entries) and every RNTuple (top-level
  fields, entries), anywhere in the directory tree; a table's name is its path in the file.
* Parquet (``pyarrow``, extra ``parquet``): one table named :data:`PARQUET_TABLE`, read from the
  footer only.
* HDF5 (``h5py``, extra ``hdf5``): every dataset with at least one dimension is a table
  (``"/path/to/ds"``, kind ``hdf5-dataset``; a compound dataset has one column per field), and
  every group whose direct child datasets share a first dimension is a table too (``"/"``,
  ``"/group"``, kind ``hdf5-group``) whose columns are those datasets.  When the children of a
  group disagree, the group table holds the largest set sharing one first dimension.  Scalar
  datasets are not tables.

Column types are written the way Awkward Array writes them (``"float32"``, ``"var * float32"``,
``"30 * 10 * float32"``, ``"string"``); ``jagged`` marks a variable-length outer dimension.

Local paths are opened directly; URLs (``s3://...``, ``root://...``) through ``fsspec``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import IO, Any

from luminary._optional import FSSPEC_DRIVERS, missing_driver, require
from luminary.errors import (
    InvalidArgumentError,
    LuminaryError,
    NotFoundError,
)

__all__ = [
    "FORMATS",
    "HEAD_BYTES",
    "PARQUET_TABLE",
    "Column",
    "FileSchema",
    "Table",
    "detect_format",
    "inspect_file",
]

FORMATS: tuple[str, ...] = ("root", "parquet", "hdf5")
TABLE_KINDS: tuple[str, ...] = ("ttree", "rntuple", "parquet", "hdf5-dataset", "hdf5-group")
PARQUET_TABLE = "table"  # a Parquet file holds one table; this is its name
UNKNOWN_TYPE = "unknown"  # a column no reader here can interpret: left out of default reads

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PAR1", "parquet"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
)
# A ROOT file starts with "root", a 4-byte version and fBEGIN, which is always 100: checking
# fBEGIN too keeps text that happens to start with "root" out.
_ROOT_MAGIC, _ROOT_BEGIN = b"root", (100).to_bytes(4, "big")
HEAD_BYTES = 12  # what detect_format needs to see of a file
_EXTRA = {"root": "root", "parquet": "parquet", "hdf5": "hdf5"}
_MODULE = {"root": "uproot", "parquet": "pyarrow", "hdf5": "h5py"}
_LABEL = {"root": "ROOT", "parquet": "Parquet", "hdf5": "HDF5"}
_TTREE_CLASSES = frozenset({"TTree", "TNtuple", "TNtupleD"})
_RNTUPLE_CLASSES = frozenset({"ROOT::RNTuple", "ROOT::Experimental::RNTuple"})
_REASON_CHARS = 300


# --------------------------------------------------------------------------- schema objects


@dataclass(frozen=True)
class Column:
    """One column (branch, field, dataset) and its type in Awkward notation."""

    name: str
    type: str
    jagged: bool = False


@dataclass(frozen=True)
class Table:
    """A set of columns with a common number of entries (rows)."""

    name: str
    kind: str  # one of TABLE_KINDS
    entries: int
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class FileSchema:
    """The format of a data file and the tables in it."""

    format: str  # one of FORMATS
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "tables": [
                {
                    "name": t.name,
                    "kind": t.kind,
                    "entries": t.entries,
                    "columns": [
                        {"name": c.name, "type": c.type, "jagged": c.jagged} for c in t.columns
                    ],
                }
                for t in self.tables
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileSchema:
        """The inverse of :meth:`to_dict`; a malformed mapping raises InvalidArgumentError."""
        try:
            fmt = _expect(data["format"], str, "format")
            if fmt not in FORMATS:
                msg = f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}"
                raise InvalidArgumentError(msg)
            tables = []
            for i, t in enumerate(_expect(data["tables"], list, "tables")):
                where = f"tables[{i}]"
                kind = _expect(t["kind"], str, f"{where}.kind")
                if kind not in TABLE_KINDS:
                    msg = f"{where}.kind {kind!r} is not one of {', '.join(TABLE_KINDS)}"
                    raise InvalidArgumentError(msg)
                entries = _expect(t["entries"], int, f"{where}.entries")
                columns = tuple(
                    Column(
                        name=_expect(c["name"], str, f"{where}.columns[{j}].name"),
                        type=_expect(c["type"], str, f"{where}.columns[{j}].type"),
                        jagged=_expect(c.get("jagged", False), bool, f"{where}.columns[{j}]"),
                    )
                    for j, c in enumerate(_expect(t["columns"], list, f"{where}.columns"))
                )
                tables.append(
                    Table(
                        name=_expect(t["name"], str, f"{where}.name"),
                        kind=kind,
                        entries=entries,
                        columns=columns,
                    )
                )
        except (KeyError, TypeError, AttributeError) as exc:
            msg = f"not a file schema mapping ({type(exc).__name__}: {exc})"
            raise InvalidArgumentError(msg) from exc
        return cls(format=fmt, tables=tuple(tables))


def _expect(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        msg = f"file schema field {where} must be {kind.__name__}, got {value!r}"
        raise InvalidArgumentError(msg)
    return value


# --------------------------------------------------------------------------- opening files


def require_format(fmt: str, purpose: str) -> ModuleType:
    """The package that reads ``fmt`` (uproot, pyarrow.parquet, h5py)."""
    if fmt == "root":
        require("awkward", "root", purpose)
        return require("uproot", "root", purpose)
    if fmt == "parquet":
        require("pyarrow", "parquet", purpose)
        return require("pyarrow.parquet", "parquet", purpose)
    return require(_MODULE[fmt], _EXTRA[fmt], purpose)


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _local(path: str) -> str:
    return path.removeprefix("file://")


def _fsspec_open(url: str, storage_options: Mapping[str, Any] | None) -> Any:
    import fsspec

    try:
        return fsspec.open(url, "rb", **dict(storage_options or {}))
    except ImportError as exc:
        if url.split("://", 1)[0] not in FSSPEC_DRIVERS:
            raise
        raise missing_driver(url, f"Reading {url}", exc) from exc


@contextmanager
def opened(
    path: str, storage_options: Mapping[str, Any] | None = None
) -> Iterator[tuple[str | IO[bytes], bytes]]:
    """``(source, head)``: a local path, or an fsspec file object positioned at 0 for a URL,
    and the file's first bytes.  A missing file raises NotFoundError."""
    try:
        if is_url(path):
            with _fsspec_open(path, storage_options) as fh:
                head = fh.read(HEAD_BYTES)
                fh.seek(0)
                yield fh, head
        else:
            local = _local(path)
            with open(local, "rb") as fh:
                head = fh.read(HEAD_BYTES)
            yield local, head
    except FileNotFoundError as exc:
        msg = f"{path}: no such file"
        raise NotFoundError(msg) from exc
    except IsADirectoryError as exc:
        msg = f"{path}: is a directory, not a data file"
        raise InvalidArgumentError(msg) from exc


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no details"
    if len(text) > _REASON_CHARS:
        text = text[: _REASON_CHARS - 3] + "..."
    return f"{type(exc).__name__}: {text}"


@contextmanager
def reading(path: str, fmt: str) -> Iterator[None]:
    """Turn what a reader library raises on a bad file into InvalidArgumentError("path: ...")."""
    try:
        yield
    except (LuminaryError, ImportError, MemoryError):
        raise
    except FileNotFoundError as exc:
        msg = f"{path}: no such file"
        raise NotFoundError(msg) from exc
    except Exception as exc:
        msg = f"{path}: not a readable {_LABEL[fmt]} file ({_reason(exc)})"
        raise InvalidArgumentError(msg) from exc


def open_root(source: str | IO[bytes], path: str) -> Any:
    """``uproot.open`` without an array cache, after checking the file is not truncated."""
    uproot = require_format("root", f"Reading the ROOT file {path}")
    rfile = uproot.open(source, array_cache=None)
    try:
        _check_complete(rfile)
    except BaseException:
        rfile.close()
        raise
    return rfile


def _check_complete(rfile: Any) -> None:
    end = int(rfile.file.fEND)
    size = getattr(rfile.file.source, "num_bytes", None)
    if size is not None and int(size) < end:
        msg = f"truncated: the header says {end} bytes, the file has {int(size)}"
        raise ValueError(msg)


# --------------------------------------------------------------------------- detection


def detect_format(
    path_or_url: str | os.PathLike[str],
    head: bytes | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> str | None:
    """``"root"``, ``"parquet"`` or ``"hdf5"`` from the magic bytes; None for anything else.

    With ``head`` (the file's first :data:`HEAD_BYTES` bytes or more) nothing is opened.
    HDF5 files with a user block (signature at offset 512 or later) are not recognised.
    """
    if head is None:
        with opened(os.fspath(path_or_url), storage_options) as (_, head):
            pass
    if head.startswith(_ROOT_MAGIC) and head[8:12] == _ROOT_BEGIN:
        return "root"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def inspect_file(
    path_or_url: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
) -> FileSchema | None:
    """The schema of a ROOT, Parquet or HDF5 file; None when it is none of those.

    Reads metadata only.  A file of a known format that cannot be read (truncated, corrupt)
    raises InvalidArgumentError ``"<path>: not a readable <format> file (<reason>)"``.
    """
    path = os.fspath(path_or_url)
    with opened(path, storage_options) as (source, head):
        fmt = detect_format(path, head)
        if fmt is None:
            return None
        require_format(fmt, f"Reading the {_LABEL[fmt]} file {path}")
        with reading(path, fmt):
            if fmt == "root":
                with open_root(source, path) as rfile:
                    tables = root_tables(rfile)
            elif fmt == "parquet":
                pq = require_format("parquet", path)
                with pq.ParquetFile(source) as pfile:
                    tables = [parquet_table(pfile)]
            else:
                h5py = require_format("hdf5", path)
                with h5py.File(source, "r") as hfile:
                    tables = [table for table, _ in hdf5_tables(hfile)]
    return FileSchema(format=fmt, tables=tuple(tables))


# --------------------------------------------------------------------------- ROOT


def _is_jagged(type_str: str) -> bool:
    return type_str.startswith(("var *", "option[var *", "?var *"))


def root_tables(rfile: Any) -> list[Table]:
    """Every TTree and RNTuple in an open uproot file (directories included)."""
    tables = []
    for name, classname in rfile.classnames(recursive=True, cycle=False).items():
        if classname in _TTREE_CLASSES:
            tables.append(_ttree_table(name, rfile[name]))
        elif classname in _RNTUPLE_CLASSES:
            tables.append(_rntuple_table(name, rfile[name]))
    return tables


def _ttree_table(name: str, tree: Any) -> Table:
    uproot = require("uproot", "root", "Reading ROOT")
    no_form = (
        uproot.interpretation.identify.UnknownInterpretation,
        uproot.interpretation.objects.CannotBeAwkward,
        NotImplementedError,
    )
    columns = []
    for key, branch in tree.items():
        try:
            type_str = str(branch.interpretation.awkward_form(tree.file).type)
        except no_form:
            type_str = f"{UNKNOWN_TYPE}[{branch.typename}]"  # e.g. a class without streamer
        columns.append(Column(name=str(key), type=type_str, jagged=_is_jagged(type_str)))
    return Table(name=name, kind="ttree", entries=int(tree.num_entries), columns=tuple(columns))


def _rntuple_table(name: str, ntuple: Any) -> Table:
    form = ntuple.to_akform()
    if isinstance(form, tuple):
        form = form[0]
    types = {str(f): str(c.type) for f, c in zip(form.fields, form.contents, strict=True)}
    columns = []
    for key in ntuple.keys(recursive=False):
        type_str = types.get(str(key), UNKNOWN_TYPE)
        columns.append(Column(name=str(key), type=type_str, jagged=_is_jagged(type_str)))
    return Table(name=name, kind="rntuple", entries=int(ntuple.num_entries), columns=tuple(columns))


# --------------------------------------------------------------------------- Parquet

_ARROW_FLOATS = {"halffloat": "float16", "float": "float32", "double": "float64"}


def arrow_type(t: Any) -> str:
    """An Arrow data type in Awkward notation."""
    pa = require("pyarrow", "parquet", "Reading Parquet")
    types = pa.types
    if types.is_list(t) or types.is_large_list(t) or types.is_list_view(t):
        return "var * " + arrow_type(t.value_type)
    if types.is_fixed_size_list(t):
        return f"{t.list_size} * " + arrow_type(t.value_type)
    if types.is_struct(t):
        fields = (t.field(i) for i in range(t.num_fields))
        return "{" + ", ".join(f"{f.name}: {arrow_type(f.type)}" for f in fields) + "}"
    if types.is_map(t):
        return f"var * {{key: {arrow_type(t.key_type)}, value: {arrow_type(t.item_type)}}}"
    if types.is_dictionary(t):
        return arrow_type(t.value_type)
    if types.is_string(t) or types.is_large_string(t):
        return "string"
    if types.is_binary(t) or types.is_large_binary(t):
        return "bytes"
    if types.is_timestamp(t):
        return f"datetime64[{t.unit}]"
    text = str(t)
    return _ARROW_FLOATS.get(text, text)


def parquet_table(pfile: Any) -> Table:
    """The single table of an open ``pyarrow.parquet.ParquetFile`` (footer only)."""
    schema = pfile.schema_arrow
    columns = []
    for field in schema:
        type_str = arrow_type(field.type)
        columns.append(Column(name=str(field.name), type=type_str, jagged=_is_jagged(type_str)))
    return Table(
        name=PARQUET_TABLE,
        kind="parquet",
        entries=int(pfile.metadata.num_rows),
        columns=tuple(columns),
    )


# --------------------------------------------------------------------------- HDF5

HDF5Source = tuple[str, str | None]  # (dataset path, compound field or None)


def _dtype_type(dtype: Any, h5py: Any) -> tuple[str, bool]:
    """(type string, jagged) of one element of an HDF5 dtype."""
    string = h5py.check_string_dtype(dtype)
    if string is not None:
        return ("string" if string.encoding == "utf-8" else "bytes"), False
    base = h5py.check_vlen_dtype(dtype)
    if base is not None:
        return "var * " + _dtype_type(base, h5py)[0], True
    if dtype.names:
        inner = ", ".join(f"{n}: {_dtype_type(dtype.fields[n][0], h5py)[0]}" for n in dtype.names)
        return "{" + inner + "}", False
    if dtype.subdtype is not None:
        sub, shape = dtype.subdtype
        return " * ".join([*map(str, shape), _dtype_type(sub, h5py)[0]]), False
    return str(dtype), False


def _dataset_column(name: str, dset: Any, h5py: Any) -> Column:
    type_str, jagged = _dtype_type(dset.dtype, h5py)
    inner = [str(d) for d in dset.shape[1:]]
    if inner:
        type_str, jagged = " * ".join([*inner, type_str]), False
    return Column(name=name, type=type_str, jagged=jagged)


def hdf5_tables(hfile: Any) -> list[tuple[Table, dict[str, HDF5Source]]]:
    """Every group table and dataset table of an open ``h5py.File``, each with where its
    columns come from."""
    h5py = require("h5py", "hdf5", "Reading HDF5")
    groups: list[tuple[str, Any]] = [("/", hfile)]
    datasets: list[tuple[str, Any]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group):
            groups.append(("/" + name, obj))
        elif isinstance(obj, h5py.Dataset) and obj.shape is not None and len(obj.shape) > 0:
            datasets.append(("/" + name, obj))

    hfile.visititems(visit)
    out: list[tuple[Table, dict[str, HDF5Source]]] = []
    for gpath, group in groups:
        children = [
            (key, obj)
            for key, obj in group.items()
            if isinstance(obj, h5py.Dataset) and obj.shape is not None and len(obj.shape) > 0
        ]
        if not children:
            continue
        lengths = Counter(int(obj.shape[0]) for _, obj in children)
        entries = max(lengths, key=lambda n: (lengths[n], n))
        prefix = gpath.rstrip("/") + "/"
        chosen = [(key, obj) for key, obj in children if int(obj.shape[0]) == entries]
        columns = tuple(_dataset_column(key, obj, h5py) for key, obj in chosen)
        sources: dict[str, HDF5Source] = {key: (prefix + key, None) for key, _ in chosen}
        out.append((Table(gpath, "hdf5-group", entries, columns), sources))
    for dpath, dset in datasets:
        entries = int(dset.shape[0])
        names = dset.dtype.names
        if names and len(dset.shape) == 1:
            columns = tuple(
                Column(name, *_dtype_type(dset.dtype.fields[name][0], h5py)) for name in names
            )
            sources = {name: (dpath, name) for name in names}
        else:
            leaf = dpath.rsplit("/", 1)[-1]
            columns = (_dataset_column(leaf, dset, h5py),)
            sources = {leaf: (dpath, None)}
        out.append((Table(dpath, "hdf5-dataset", entries, columns), sources))
    return out


def normalize_hdf5_table(name: str) -> str:
    return "/" + name.strip("/") if name.strip("/") else "/"


_SIMPLE_JAGGED = re.compile(r"(?:\?|option\[)?var \* \??(?:u?int\d+|float\d+|bool)\]?")


def is_simple_jagged(type_str: str) -> bool:
    """One variable-length level of numbers: what ``pad_to`` can pad."""
    return bool(_SIMPLE_JAGGED.fullmatch(type_str))
