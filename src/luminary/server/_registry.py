"""The model registry: ``/api/v1/models``, ``/api/v1/model-versions/{name@version|alias}``,
aliases and their history, and ``/api/v1/events``.

The actor recorded with a registration, an alias move or a deletion is always the caller's
authenticated identity (:class:`~luminary.server._auth.Caller`), never a value from the request:
an ``actor`` field or query parameter that an old client still sends is ignored.

A registration is recorded as the server reads the file, not as the client describes it: the
caller must hold the blob (uploaded it, or may read an object naming it), and the server
inspects the stored bytes itself (:func:`luminary.registry.inspect_model` on a verified copy).
A file that executes code on load is refused (400) unless the request opts in with
``metadata.executes_code: true`` (what ``register_model(..., allow_pickle=True)`` sends); a file
that is not in the declared ``format`` is refused too. The format, signature and metadata that
the server read are the ones recorded."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from luminary.auth.models import Role
from luminary.errors import InvalidArgumentError, NotFoundError
from luminary.server._app import ok
from luminary.server._auth import Caller, Guard, require
from luminary.storage.blobs import check_digest
from luminary.store import Store
from luminary.store.wire import enc_event, enc_model, enc_move, enc_version

if TYPE_CHECKING:
    from luminary.registry import ModelInfo

__all__ = ["router"]


class ModelIn(BaseModel):
    name: str
    project: str
    description: str = ""


class VersionIn(BaseModel):
    project: str
    digest: str
    size: int
    format: str
    filename: str
    signature: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    source_run_id: str | None = None
    parent: str | None = None
    description: str = ""


class AliasIn(BaseModel):
    version: int


def router(store: Store, guard: Guard, spool: Path) -> APIRouter:
    r = APIRouter()
    reads = [require(Role.READER, "model", "name")]
    writes = [require(Role.WRITER, "model", "name")]
    reads_ref = [require(Role.READER, "model", "ref")]
    writes_ref = [require(Role.WRITER, "model", "ref")]

    @r.post("/models")
    def create_model(body: ModelIn, caller: Caller) -> Response:
        guard.check(caller, "project", body.project, Role.WRITER)
        return ok(enc_model(store.create_model(body.name, body.project, body.description)), 201)

    @r.get("/models")
    def list_models(caller: Caller, project: str | None = None) -> Response:
        if project is not None:
            guard.check(caller, "project", project, Role.READER)
        models = guard.only_visible(caller, store.list_models(project), lambda m: m.project)
        return ok([enc_model(m) for m in models])

    @r.get("/models/{name}", dependencies=reads)
    def get_model(name: str) -> Response:
        return ok(enc_model(store.get_model(name)))

    @r.delete("/models/{name}", dependencies=writes)
    def delete_model(name: str, caller: Caller) -> Response:
        store.delete_model(name, caller.user)
        return Response(status_code=204)

    @r.post("/models/{name}/versions")
    def create_version(name: str, body: VersionIn, caller: Caller) -> Response:
        guard.check(caller, "project", body.project, Role.WRITER)
        if guard.project_of("model", name) is not None:  # registering into an existing model
            guard.check(caller, "model", name, Role.WRITER)
        if body.source_run_id is not None:
            guard.check(caller, "run", body.source_run_id, Role.READER)
        if body.parent is not None:
            guard.check(caller, "model", body.parent, Role.READER)
        guard.check_names_blobs(caller, "the model version", (check_digest(body.digest),))
        info = _inspect_stored(store, body, spool)
        metadata = {k: v for k, v in body.metadata.items() if k != "executes_code"}
        metadata.update(info.metadata)
        if info.executes_code:
            metadata["executes_code"] = True  # opted in: the request said so
        version = store.create_model_version(
            name,
            project=body.project,
            digest=body.digest,
            size=body.size,
            format=info.format,
            filename=body.filename,
            signature=info.signature() if info.inputs or info.outputs else body.signature,
            metadata=metadata,
            source_run_id=body.source_run_id,
            parent=body.parent,
            description=body.description,
            actor=caller.user,
        )
        return ok(enc_version(version), 201)

    @r.get("/models/{name}/versions", dependencies=reads)
    def list_versions(name: str) -> Response:
        return ok([enc_version(v) for v in store.list_model_versions(name)])

    @r.put("/models/{name}/aliases/{alias}", dependencies=writes)
    def set_alias(name: str, alias: str, body: AliasIn, caller: Caller) -> Response:
        return ok(enc_move(store.set_alias(name, alias, body.version, caller.user)))

    @r.delete("/models/{name}/aliases/{alias}", dependencies=writes)
    def unset_alias(name: str, alias: str, caller: Caller) -> Response:
        return ok(enc_move(store.unset_alias(name, alias, caller.user)))

    @r.get("/models/{name}/alias-history", dependencies=reads)
    def alias_history(name: str, alias: str | None = None) -> Response:
        return ok([enc_move(m) for m in store.alias_history(name, alias)])

    @r.get("/model-versions/{ref}", dependencies=reads_ref)
    def get_version(ref: str) -> Response:
        return ok(enc_version(store.get_model_version(ref)))

    @r.delete("/model-versions/{ref}", dependencies=writes_ref)
    def delete_version(ref: str, caller: Caller) -> Response:
        store.delete_model_version(ref, caller.user)
        return Response(status_code=204)

    @r.get("/model-versions/{ref}/derived", dependencies=reads_ref)
    def derived(ref: str) -> Response:
        return ok([enc_version(v) for v in store.derived_versions(ref)])

    @r.get("/events")
    def list_events(
        caller: Caller,
        after: int = 0,
        limit: int = 100,
        kinds: list[str] | None = Query(None),  # noqa: B008 - FastAPI's idiom
    ) -> Response:
        return ok([enc_event(e) for e in guard.events(caller, after, limit, kinds)])

    return r


_SUFFIX = re.compile(r"\.[A-Za-z0-9_-]{1,16}")


def _inspect_stored(store: Store, body: VersionIn, spool: Path) -> ModelInfo:
    """What the stored blob ``body.digest`` is, read by the server from a verified copy named
    with the file name's extensions (they are hints to :func:`~luminary.registry.inspect_model`,
    as on the client). Errors name the client's file name, not the copy."""
    from luminary.registry import PickleNotAllowedError, inspect_model

    name = PurePosixPath(body.filename).name
    suffix = "".join(x for x in PurePosixPath(name).suffixes if _SUFFIX.fullmatch(x))
    spool.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=spool, prefix="model-") as tmp:
        path = Path(tmp) / f"model{suffix}"
        try:
            store.blobs.get_file(body.digest, path)
        except NotFoundError:
            msg = (
                f"the model version names blob {body.digest}, which is not in the store; upload "
                "the file first (register_model does both)"
            )
            raise InvalidArgumentError(msg) from None
        held = path.stat().st_size
        if held != body.size:
            msg = (
                f"the model version says its file is {body.size} bytes, but blob {body.digest} "
                f"holds {held}; give the blob's size"
            )
            raise InvalidArgumentError(msg)
        allow = body.metadata.get("executes_code") is True
        try:
            return inspect_model(path, allow_pickle=allow, format=body.format)
        except PickleNotAllowedError as exc:
            raise PickleNotAllowedError(_named(exc, path, name), exc.info) from None
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(_named(exc, path, name)) from None


def _named(exc: Exception, copy: Path, name: str) -> str:
    return str(exc).replace(repr(str(copy)), repr(name)).replace(str(copy), name)
