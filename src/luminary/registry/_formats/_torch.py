"""Zip archives: a TorchScript archive, a ``torch.save`` pickle archive, or another zip.

A TorchScript archive is accepted only when its pickles name nothing but the globals
TorchScript's restricted unpickler resolves; anything else in one is a pickle archive that a
plain ``torch.load`` would import (and may run), and is reported as ``"pickle"``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from luminary.registry._formats._pickle import (
    PICKLE_SCAN_BYTES,
    PickleScan,
    pickle_info,
    scan_pickles,
)
from luminary.registry._formats._types import LIST_LIMIT, ModelInfo

__all__ = ["inspect_zip"]

# The globals TorchScript's C++ unpickler resolves (torch/csrc/jit/serialization/unpickler.cpp,
# readGlobal); anything else in a TorchScript-looking archive means it is really a pickle that a
# plain ``torch.load`` would import (and may run).
_TORCHSCRIPT_GLOBALS = frozenset(
    {
        "__main__.TensorID",
        "__main__.IntList",
        "builtins.complex",
        "collections.OrderedDict",
        "torch.device",
        "torch._tensor._rebuild_from_type_v2",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_sparse_tensor",
        "torch.distributed.rpc.rref",
    }
)
_TORCH_QSCHEMES = frozenset(
    {
        "per_tensor_affine",
        "per_channel_affine",
        "per_tensor_symmetric",
        "per_channel_symmetric",
        "per_channel_affine_float_qparams",
    }
)


def _torchscript_global_ok(name: str) -> bool:
    module, _, attr = name.rpartition(".")
    return (
        name in _TORCHSCRIPT_GLOBALS
        or name.startswith("__torch__.")  # TorchScript classes and enums
        or module == "torch.jit._pickle"
        or (module == "torch" and (attr.endswith("Storage") or attr in _TORCH_QSCHEMES))
    )


def inspect_zip(p: Path) -> ModelInfo | None:
    """TorchScript, a ``torch.save`` pickle archive, or another zip (``opaque``)."""
    try:
        with zipfile.ZipFile(p) as zf:
            members = zf.infolist()
            names = [m.filename for m in members]
            pickles = [n for n in names if n.rpartition("/")[2] in ("data.pkl", "constants.pkl")]
            code = sorted({n for n in names if "/code/" in f"/{n}" and not n.endswith("/")})
            scans = {n: scan_pickles(_read_member(zf, n)) for n in pickles}
            versions = [n for n in names if n.rpartition("/")[2] == "version"]
            version = (
                _read_member(zf, versions[0], 64).decode("latin-1").strip() if versions else None
            )
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        return ModelInfo("opaque", metadata={"container": "zip", "note": f"unreadable: {exc}"})
    prefix = names[0].partition("/")[0] if names and all("/" in n for n in names) else ""
    summary: dict[str, Any] = {
        "archive_name": prefix,
        "files": len(names),
        "uncompressed_bytes": sum(m.file_size for m in members),
    }
    if version is not None:
        summary["version"] = version
    globals_ = list(dict.fromkeys(g for s in scans.values() for g in s.globals_))
    has_data = any(n.rpartition("/")[2] == "data.pkl" for n in pickles)
    if code and pickles and version is not None:
        bad = [g for g in globals_ if not _torchscript_global_ok(g)]
        if not bad:
            summary["code_files"] = [_strip(n, prefix) for n in code[:LIST_LIMIT]]
            summary["extra_files"] = [
                _strip(n, prefix) for n in names if "/extra/" in f"/{n}" and not n.endswith("/")
            ][:LIST_LIMIT]
            summary["tensor_records"] = sum(1 for n in names if "/data/" in f"/{n}")
            return ModelInfo("torchscript", metadata=summary)
        detail = (
            "a zip laid out like TorchScript whose pickles import globals TorchScript never "
            f"uses ({', '.join(bad[:5])}), i.e. a pickle archive"
        )
    elif has_data:
        detail = "a torch.save pickle archive (zip with data.pkl and no code/)"
    else:
        members_shown = [n for n in names if not n.endswith("/")][:LIST_LIMIT]
        return ModelInfo("opaque", metadata={"container": "zip", "members": members_shown})
    scan = PickleScan(
        globals_,
        next((s.protocol for s in scans.values() if s.protocol is not None), None),
        sum(s.ops for s in scans.values()),
        0,
        next((s.error for s in scans.values() if s.error is not None), None),
    )
    info = pickle_info(detail, p.stat().st_size, scan)
    info.metadata.update(summary)
    return info


def _read_member(zf: zipfile.ZipFile, name: str, limit: int = PICKLE_SCAN_BYTES) -> bytes:
    with zf.open(name) as f:
        return f.read(limit)


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix) + 1 :] if prefix and name.startswith(prefix + "/") else name
