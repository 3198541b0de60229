"""Pickles in disguise are refused by their content, whatever the file is called: compressed,
inside archives, NumPy object arrays; only ``allow_pickle=True`` (``--allow-pickle``) lets them
in. Files are made by the real libraries (pickle, gzip, bz2, lzma, zlib, zipfile, tarfile,
NumPy) and by hand for what no library writes."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from luminary.registry import PickleNotAllowedError, inspect_model

_PAYLOAD = pickle.dumps(OrderedDict(w=[1.0, 2.0]), protocol=4)
_OLD_PAYLOAD = pickle.dumps({"w": [1.0, 2.0]}, protocol=0)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


_OBJECTS = np.array([{"a": 1}, None], dtype=object)
_RECORDS = np.zeros(2, dtype=[("x", "f4"), ("meta", "O")])

DISGUISED: dict[str, Callable[[], bytes]] = {
    "gzip": lambda: gzip.compress(_PAYLOAD),
    "gzip protocol 0": lambda: gzip.compress(_OLD_PAYLOAD),
    "zlib (joblib)": lambda: zlib.compress(_PAYLOAD),
    "bz2": lambda: bz2.compress(_PAYLOAD),
    "xz": lambda: lzma.compress(_PAYLOAD),
    "lzma alone (joblib)": lambda: lzma.compress(_PAYLOAD, format=lzma.FORMAT_ALONE),
    "zstd": lambda: b"\x28\xb5\x2f\xfd" + b"\x00" * 64,
    "gzip of gzip": lambda: gzip.compress(gzip.compress(_PAYLOAD)),
    "zip member": lambda: _zip({"readme.txt": b"weights", "weights.bin": _PAYLOAD}),
    "zip member named pkl": lambda: _zip({"model/state.pkl": b"anything"}),
    "zip of gzip": lambda: _zip({"w.bin.gz": gzip.compress(_PAYLOAD)}),
    "gzip of zip": lambda: gzip.compress(_zip({"w.bin": _PAYLOAD})),
    "legacy torch tar": lambda: _tar({"sys_info": b"{}", "pickle": _PAYLOAD}),
    "tar member": lambda: _tar({"a/weights": _PAYLOAD}),
    "numpy object array": lambda: _npy(_OBJECTS),
    "numpy record with object field": lambda: _npy(_RECORDS),
    "npz with an object array": lambda: _npz(x=np.ones(3), y=_OBJECTS),
    "gzip npy object array": lambda: gzip.compress(_npy(_OBJECTS)),
}

SAFE: dict[str, Callable[[], bytes]] = {
    "numpy float array": lambda: _npy(np.arange(12, dtype=np.float32).reshape(3, 4)),
    "npz of numbers": lambda: _npz(w=np.ones((4, 4)), b=np.zeros(4)),
    "gzip of text": lambda: gzip.compress(b"just some text, not a pickle\n" * 100),
    "zip of text": lambda: _zip({"a.txt": b"hello", "b/c.json": b"{}"}),
    "tar of text": lambda: _tar({"a.txt": b"hello"}),
}


@pytest.mark.parametrize("kind", sorted(DISGUISED))
def test_a_disguised_pickle_is_refused_whatever_its_name(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "model.bin"  # an innocent name: only the content can tell
    path.write_bytes(DISGUISED[kind]())
    with pytest.raises(PickleNotAllowedError, match="allow_pickle=True") as info:
        inspect_model(path)
    assert info.value.info.executes_code
    allowed = inspect_model(path, allow_pickle=True)  # the one opt-in
    assert (allowed.format, allowed.executes_code) == ("pickle", True)


@pytest.mark.parametrize("kind", sorted(SAFE))
def test_containers_without_pickles_are_accepted(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(SAFE[kind]())
    info = inspect_model(path)
    assert not info.executes_code


def test_a_compression_bomb_is_inspected_in_bounded_work(tmp_path: Path) -> None:
    """200 MiB of zeros in a 200 KB gzip, and 300 such members in a zip: the sniffer reads a
    bounded prefix of each, and a file past the total bound is refused, not inflated."""
    zeros = gzip.compress(b"\x00" * (200 << 20), compresslevel=1)
    one = tmp_path / "bomb.gz"
    one.write_bytes(zeros)
    assert not inspect_model(one).executes_code  # zeros are no pickle; only a prefix is read
    many = tmp_path / "bombs.zip"
    with zipfile.ZipFile(many, "w", zipfile.ZIP_STORED) as zf:
        for i in range(300):
            zf.writestr(f"part{i}.gz", zeros)
    started = time.process_time()
    with pytest.raises(PickleNotAllowedError, match="more than 256 MiB to inspect"):
        inspect_model(many)
    assert time.process_time() - started < 120  # generous: bounded, not 60 GB of inflation


def test_the_cli_refuses_a_disguised_pickle_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx.gz"
    path.write_bytes(gzip.compress(_PAYLOAD))
    cmd = [sys.executable, "-m", "luminary.cli", "models", "register", "tagger", str(path)]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert "--allow-pickle" in refused.stderr
    assert "compressed with gzip" in refused.stderr
    assert "Traceback" not in refused.stderr
    allowed = subprocess.run([*cmd, "--allow-pickle"], capture_output=True, text=True, timeout=120)
    assert allowed.returncode == 0, allowed.stderr
