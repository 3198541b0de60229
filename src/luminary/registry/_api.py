"""The registry SDK: ``lm.register_model``, ``lm.get_model``, aliases."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luminary._actor import current_actor
from luminary.errors import InvalidArgumentError
from luminary.registry.models import AliasMove, Model, ModelRef, ModelVersion, parse_ref

__all__ = [
    "LocalModel",
    "alias_history",
    "delete_model",
    "get_model",
    "list_model_versions",
    "list_models",
    "register_model",
    "set_alias",
    "unset_alias",
]


@dataclass(frozen=True)
class LocalModel:
    """A model version and the local path of its file (verified against its BLAKE3 hash)."""

    version: ModelVersion
    path: Path

    @property
    def ref(self) -> str:
        return self.version.ref


def register_model(
    name: str,
    path: str | os.PathLike[str],
    *,
    run: Any = None,
    project: str | None = None,
    description: str = "",
    parent: str | ModelRef | None = None,
    alias: str | None = None,
    allow_pickle: bool = False,
    format: str | None = None,
) -> ModelVersion:
    """Register the file at ``path`` as the next version of model ``name``.

    ``run`` (an id, a run, or by default the active run) is recorded as the source: the
    version keeps a snapshot of its metrics and the lineage follows it to its data. The
    signature is read from the file; formats whose loading executes code (pickle, joblib) are
    refused unless ``allow_pickle=True``. ``alias`` moves that alias to the new version.
    """
    from luminary._current import get_store
    from luminary.registry._formats import inspect_model
    from luminary.tracking import active_run

    store = get_store()
    file = Path(path)
    if not file.is_file():
        msg = f"model file {str(path)!r} does not exist or is not a file; register one file"
        raise InvalidArgumentError(msg)
    info = inspect_model(file, allow_pickle=allow_pickle, format=format)
    external = info.metadata.get("external_data_files") or []
    if external:
        msg = (
            f"{file} keeps its weights in {len(external)} external file(s) "
            f"({', '.join(map(str, external[:3]))}); a model version is one file. Save it as "
            "one file (onnx.save(model, path, save_as_external_data=False)) and register that"
        )
        raise InvalidArgumentError(msg)
    metadata = dict(info.metadata)
    if info.executes_code:
        metadata["executes_code"] = True  # registered with allow_pickle=True
    if run is None:
        current = active_run()
        run_id = current.id if current is not None else None
    else:
        run_id = run if isinstance(run, str) else run.id
    if project is None:
        if run_id is not None:
            project = store.get_run(run_id).project
        else:
            project = os.environ.get("LUMINARY_PROJECT") or "default"
    active = active_run()
    if active is not None and active.id == run_id:
        active.flush()  # the version's metric snapshot sees everything logged so far
    blob = store.blobs.put_file(file)
    actor = current_actor()
    version = store.create_model_version(
        name,
        project=project,
        digest=blob.digest,
        size=blob.size,
        format=info.format,
        filename=file.name,
        signature=info.signature(),
        metadata=metadata,
        source_run_id=run_id,
        parent=parent,
        description=description,
        actor=actor,
    )
    if alias is not None:
        store.set_alias(name, alias, version.version, actor)
        version = store.get_model_version(version.ref)
    return version


def get_model(ref: str, *, dest: str | os.PathLike[str] | None = None) -> LocalModel:
    """Resolve ``name@version`` / ``name@alias`` / ``name`` and fetch its file.

    Files are cached by hash under ``$LUMINARY_HOME/models`` (or written to ``dest``); a cached
    file of the right size is reused, a new download is verified byte for byte.
    """
    from luminary._current import get_store
    from luminary.config import Settings

    store = get_store()
    version = store.get_model_version(ref)
    if dest is None:
        folder = Settings.from_env().home / "models" / version.digest
        target = folder / version.filename
        if target.is_file() and target.stat().st_size == version.size:
            return LocalModel(version, target)
    else:
        target = Path(dest)
        if target.is_dir():
            target = target / version.filename
    store.blobs.get_file(version.digest, target)
    return LocalModel(version, target)


def set_alias(name: str, alias: str, version: int) -> AliasMove:
    from luminary._current import get_store

    return get_store().set_alias(name, alias, version, current_actor())


def unset_alias(name: str, alias: str) -> AliasMove:
    from luminary._current import get_store

    return get_store().unset_alias(name, alias, current_actor())


def alias_history(name: str, alias: str | None = None) -> list[AliasMove]:
    from luminary._current import get_store

    return get_store().alias_history(name, alias)


def list_models(project: str | None = None) -> list[Model]:
    from luminary._current import get_store

    return get_store().list_models(project)


def list_model_versions(name: str) -> list[ModelVersion]:
    from luminary._current import get_store

    return get_store().list_model_versions(name)


def delete_model(ref: str) -> None:
    """Delete a model (``name``) or one version (``name@3``)."""
    from luminary._current import get_store

    store = get_store()
    parsed = parse_ref(ref)
    if parsed.version is None and parsed.alias is None and "@" not in ref:
        store.delete_model(parsed.name, current_actor())
    else:
        store.delete_model_version(parsed, current_actor())
