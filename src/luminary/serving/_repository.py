"""The model repository: where models come from, which versions are loaded, hot swaps.

Sources:

* a folder laid out as Triton's (``DIR/<model>/<version>/model.onnx`` with an optional
  ``DIR/<model>/config.pbtxt``) or flat (``DIR/<model>.onnx``);
* registry references (``jet-tagger@production``, ``deepmet@3``), served under the model's
  name. A reference through an alias is watched: when the alias moves, the new version is
  loaded and warmed up beside the old one, then swapped in; the old version drains its queue
  and is closed. No request fails across the swap.

A model that fails to load is kept in the index as ``UNAVAILABLE`` with the reason; the
others keep serving. Thread-safe: lookups read an immutable mapping that swaps replace whole.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from luminary.errors import InvalidArgumentError, LuminaryError, nearest
from luminary.serving._batcher import Batcher
from luminary.serving._config import build_spec, read_config
from luminary.serving._errors import InvalidInputError, ModelNotFoundError, UnavailableError
from luminary.serving._stats import ModelStats
from luminary.serving._types import DTYPES, ModelSpec
from luminary.serving.backends import (
    BACKENDS,
    FILE_SUFFIXES,
    PLATFORMS,
    Backend,
    BackendOptions,
    LoadError,
)

log = logging.getLogger("luminary.serving")


@dataclass(frozen=True)
class VersionFile:
    """One version a source offers: its number, file and optional configuration."""

    version: str
    path: Path
    config: Any | None = None
    origin: str = ""  # e.g. "jet-tagger@production" or the folder


class Source(abc.ABC):
    """Where one model's versions come from."""

    name: str

    @abc.abstractmethod
    def versions(self) -> list[VersionFile]:
        """The versions to serve now (raises with the reason when none can be found)."""

    @property
    def watched(self) -> bool:
        """Whether :meth:`versions` may change while serving (an alias can move)."""
        return False


class FolderSource(Source):
    """``DIR/<model>/`` in Triton's layout, or one flat ``DIR/<model>.onnx``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.stem if path.is_file() else path.name

    def versions(self) -> list[VersionFile]:
        if self.path.is_file():
            return [VersionFile("1", self.path, None, str(self.path))]
        config_file = self.path / "config.pbtxt"
        config = read_config(config_file) if config_file.is_file() else None
        numbered = sorted(
            (int(p.name), p) for p in self.path.iterdir() if p.is_dir() and p.name.isdigit()
        )
        if not numbered:
            msg = (
                f"model folder {self.path} has no version folders; lay it out as "
                f"{self.path}/1/model.onnx"
            )
            raise InvalidArgumentError(msg)
        chosen = numbered[-1:]
        if config is not None and config.HasField("version_policy"):
            policy = config.version_policy
            which = policy.WhichOneof("policy_choice")
            if which == "all":
                chosen = numbered
            elif which == "specific":
                wanted = set(policy.specific.versions)
                chosen = [(n, p) for n, p in numbered if n in wanted]
            elif which == "latest":
                chosen = numbered[-max(1, policy.latest.num_versions) :]
        files = []
        for number, folder in chosen:
            files.append(VersionFile(str(number), _model_file(folder, config), config, str(folder)))
        return files


def _model_file(folder: Path, config: Any | None) -> Path:
    if config is not None and config.default_model_filename:
        candidate: Path = folder / str(config.default_model_filename)
        if not candidate.resolve().is_relative_to(folder.resolve()):
            msg = f"default_model_filename {config.default_model_filename!r} leaves {folder}"
            raise InvalidArgumentError(msg)
        return candidate
    default = folder / "model.onnx"
    if default.exists():
        return default
    known = [p for p in sorted(folder.iterdir()) if p.suffix in FILE_SUFFIXES]
    if len(known) == 1:
        return known[0]
    msg = f"no model file in {folder}; expected model.onnx"
    raise InvalidArgumentError(msg)


class RegistrySource(Source):
    """A registry reference; with an alias, the version follows the alias."""

    def __init__(self, ref: str, store: Any | None = None) -> None:
        from luminary.names import parse_ref

        self.ref = parse_ref(ref)
        self.name = self.ref.name
        self._store = store

    @property
    def watched(self) -> bool:
        return self.ref.version is None

    def versions(self) -> list[VersionFile]:
        from luminary._current import get_store
        from luminary.registry import get_model

        store = self._store or get_store()
        version = store.get_model_version(str(self.ref))
        if version.format != "onnx":
            msg = (
                f"{version.ref} is a {version.format} model; the server runs ONNX models "
                "(export it with luminary's ONNX export, then register the .onnx file)"
            )
            raise InvalidArgumentError(msg)
        local = get_model(version.ref)
        return [VersionFile(str(version.version), local.path, None, str(self.ref))]

    def current_version(self) -> str:
        from luminary._current import get_store

        store = self._store or get_store()
        return str(store.get_model_version(str(self.ref)).version)


@dataclass
class LoadedModel:
    """One ready model version: its spec, batcher and statistics."""

    spec: ModelSpec
    batcher: Batcher
    stats: ModelStats
    origin: str
    device: str
    loaded_at: float = field(default_factory=time.time)


@dataclass
class ModelEntry:
    name: str
    source: Source
    versions: dict[str, LoadedModel] = field(default_factory=dict)
    state: str = "UNAVAILABLE"
    reason: str = ""

    @property
    def latest(self) -> LoadedModel | None:
        if not self.versions:
            return None
        return self.versions[max(self.versions, key=int)]


class ModelRepository:
    """Loads, serves, swaps and unloads models. Thread-safe."""

    def __init__(
        self,
        *,
        instances: int = 1,
        threads: int = 1,
        poll_seconds: float = 2.0,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self._entries: dict[str, ModelEntry] = {}
        self._lock = threading.RLock()
        self._instances = instances
        self._threads = threads
        self._poll = poll_seconds
        self._on_change = on_change
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- building ---------------------------------------------------------------------

    def add(self, source: Source, load: bool = True) -> ModelEntry:
        with self._lock:
            if source.name in self._entries:
                msg = f"two sources serve a model named {source.name!r}; serve it once"
                raise InvalidArgumentError(msg)
            entry = self._entries[source.name] = ModelEntry(source.name, source)
        if load:
            self.load(source.name)
        return entry

    def add_folder(self, folder: Path, load: bool = True) -> list[ModelEntry]:
        """Every model in ``folder`` (Triton layout or flat files)."""
        if not folder.is_dir():
            msg = f"model repository {folder} is not a folder"
            raise InvalidArgumentError(msg)
        entries = []
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            if path.is_dir() or path.suffix in FILE_SUFFIXES:
                entries.append(self.add(FolderSource(path), load=load))
        return entries

    # -- lookups ----------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> ModelEntry:
        entry = self._entries.get(name)
        if entry is None:
            msg = f"no model {name!r} on this server; {nearest(name, self._entries, 'model')}"
            raise ModelNotFoundError(msg)
        return entry

    def get(self, name: str, version: str = "") -> LoadedModel:
        """The ready version asked for (the newest when ``version`` is empty).

        A model with no ready version is unavailable (clients may retry elsewhere); a version
        the model does not have is not found (retrying cannot help).
        """
        version = parse_version(version)
        entry = self.entry(name)
        versions = entry.versions  # one read: swaps replace the dict whole
        if not versions:
            reason = f": {entry.reason}" if entry.reason else ""
            msg = f"model {name!r} is not ready{reason}"
            raise UnavailableError(msg)
        if not version:
            return versions[max(versions, key=int)]
        loaded = versions.get(version)
        if loaded is None:
            msg = (
                f"model {name!r} has no version {version}; its versions are "
                f"{', '.join(sorted(versions, key=int))}"
            )
            raise ModelNotFoundError(msg)
        return loaded

    def index(self) -> list[dict[str, str]]:
        rows = []
        for name in self.names():
            entry = self._entries[name]
            if entry.versions:
                for v in sorted(entry.versions, key=int):
                    rows.append({"name": name, "version": v, "state": "READY", "reason": ""})
            else:
                rows.append(
                    {"name": name, "version": "", "state": entry.state, "reason": entry.reason}
                )
        return rows

    def ready(self) -> bool:
        """The server is ready when every model is (Triton's rule with strict readiness)."""
        return all(e.versions for e in self._entries.values())

    # -- loading ----------------------------------------------------------------------

    def _load_version(self, name: str, vf: VersionFile) -> LoadedModel:
        config = vf.config
        backend_name = FILE_SUFFIXES.get(vf.path.suffix, "onnxruntime")
        if config is not None and config.backend:
            backend_name = config.backend
        elif config is not None and config.platform:
            backend_name = PLATFORMS.get(config.platform, config.platform)
        cls = BACKENDS.get(backend_name)
        if cls is None:
            msg = f"backend {backend_name!r} is not available; available: {', '.join(BACKENDS)}"
            raise LoadError(msg)
        if not vf.path.is_file():
            msg = f"model file {vf.path} does not exist"
            raise LoadError(msg)
        params = {}
        gpus: tuple[int, ...] = ()
        kind = "KIND_AUTO"
        if config is not None:
            params = {k: v.string_value for k, v in config.parameters.items()}
            if config.instance_group:
                from luminary.serving._proto import model_config_pb2 as mc

                group = config.instance_group[0]
                kind = mc.ModelInstanceGroup.Kind.Name(group.kind)
                gpus = tuple(group.gpus)
        first = cls.load(vf.path, BackendOptions(self._threads, 1, kind, gpus, params))
        spec = build_spec(
            name,
            vf.version,
            cls.name,
            cls.platform,
            first.inputs,
            first.outputs,
            config,
            instances=self._instances,
            threads=self._threads,
        )
        try:
            _check_servable(spec, vf.path)
        except LoadError:
            first.close()
            raise
        options = BackendOptions(spec.intra_op_threads, spec.inter_op_threads, kind, gpus, params)
        if (spec.intra_op_threads, spec.inter_op_threads) != (self._threads, 1):
            first.close()
            first = cls.load(vf.path, options)
        instances: list[Backend] = [first]
        instances += [cls.load(vf.path, options) for _ in range(spec.instances - 1)]
        for backend in instances:
            _warm_up(backend, spec)
        stats = ModelStats()
        batcher = Batcher(spec, instances, stats.observe)
        return LoadedModel(spec, batcher, stats, vf.origin, first.device)

    def load(self, name: str, force: bool = False) -> ModelEntry:
        """(Re)load a model from its source; on failure it is reported not ready.

        Versions already loaded from the same origin are kept unless ``force`` (the
        repository extension's load request re-reads the files).
        """
        with self._lock:
            entry = self.entry(name)
            old = entry.versions
            new: dict[str, LoadedModel] = {}
            try:
                files = entry.source.versions()
                for vf in files:
                    kept = old.get(vf.version)
                    if kept is not None and kept.origin == vf.origin and not force:
                        new[vf.version] = kept
                    else:
                        new[vf.version] = self._load_version(name, vf)
            except Exception as exc:  # whatever the cause, only this model fails
                for version, loaded in new.items():  # versions loaded before the failure
                    if old.get(version) is not loaded:
                        loaded.batcher.close(wait=False)
                reason = str(exc) if isinstance(exc, (LuminaryError, OSError)) else repr(exc)
                entry.state, entry.reason = "UNAVAILABLE", reason
                if isinstance(exc, (LuminaryError, OSError)):
                    log.warning("model %s failed to load: %s", name, reason)
                else:
                    log.exception("model %s failed to load", name)
                return entry
            entry.versions = new  # the swap: one assignment
            entry.state, entry.reason = "READY", ""
            for version, loaded in old.items():
                if new.get(version) is not loaded:
                    loaded.batcher.close(wait=False)  # drains its queue, then stops
        if self._on_change is not None:
            self._on_change(name, ",".join(sorted(new, key=int)))
        return entry

    def unload(self, name: str) -> None:
        with self._lock:
            entry = self.entry(name)
            old, entry.versions = entry.versions, {}
            entry.state, entry.reason = "UNAVAILABLE", "unloaded"
        for loaded in old.values():
            loaded.batcher.close(wait=False)

    # -- watching aliases -------------------------------------------------------------

    def start_watching(self) -> None:
        """Poll watched sources (registry aliases) and hot-swap when they move."""
        if self._watcher is not None or not any(e.source.watched for e in self._entries.values()):
            return
        self._watcher = threading.Thread(target=self._watch, name="lm-alias-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(self._poll):
            for entry in list(self._entries.values()):
                source = entry.source
                if not isinstance(source, RegistrySource) or not source.watched:
                    continue
                try:
                    current = source.current_version()
                except (LuminaryError, OSError) as exc:
                    log.warning("cannot resolve %s: %s", source.ref, exc)
                    continue
                if current not in entry.versions:
                    log.info("%s moved to version %s; swapping", source.ref, current)
                    self.load(entry.name)

    def close(self) -> None:
        """Stop watching; finish every queued request; release the models."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        for entry in list(self._entries.values()):
            for loaded in entry.versions.values():
                loaded.batcher.close(wait=True)


def parse_version(text: str) -> str:
    """A model version as the protocol gives it: ``""`` (the newest) or a whole number.

    ``"01"`` is version 1; anything else (``"one"``, ``"-1"``, ``"²"``, 30 digits) is refused.
    """
    if not text:
        return ""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        msg = f"model version {text!r} is not a version number; use a whole number such as 1"
        raise InvalidInputError(msg)
    return str(int(text))


def _check_servable(spec: ModelSpec, path: Path) -> None:
    """Refuse tensors the server cannot carry (``BYTES`` strings, ``BF16``) at load time."""
    for kind, tensors in (("input", spec.inputs), ("output", spec.outputs)):
        for t in tensors:
            if t.datatype not in DTYPES:
                msg = (
                    f"{path.name}: {kind} {t.name!r} is a {t.datatype} tensor; this server "
                    f"carries numeric tensors only ({', '.join(DTYPES)}). Export the model "
                    "with numeric inputs and outputs"
                )
                raise LoadError(msg)


def _warm_up(backend: Backend, spec: ModelSpec) -> None:
    """Run one zero-filled event so the first request does not pay for initialisation."""
    feeds = {}
    for t in spec.inputs:
        dims = [d if d > 0 else 1 for d in t.dims]
        shape = [1, *dims] if spec.batched else dims
        feeds[t.name] = np.zeros(shape, dtype=t.dtype)
    try:
        backend.run(feeds, [t.name for t in spec.outputs])
    except Exception as exc:
        msg = f"model {spec.name!r} version {spec.version} failed its warm-up run: {exc}"
        raise LoadError(msg) from exc
