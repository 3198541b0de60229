"""Blobs: ``/api/v1/blobs/{digest}``, streamed both ways, never held whole in memory.

- ``PUT`` spools the request body to a temporary file, hashing it as it arrives; a body whose
  BLAKE3 is not the digest in the URL is refused (400) and nothing is stored. A matching one is
  stored through the server's :class:`~luminary.storage.blobs.BlobStore` (atomic, as always).
- ``GET`` streams the stored bytes; the client verifies them against the digest as they come.
- ``HEAD`` answers whether the blob exists and its size (``content-length``), to a caller who
  holds it (:mod:`luminary.server._blob_reads`); to anyone else, ``404``.
- ``POST /blobs/{digest}/verify`` re-hashes the stored bytes on the server: ``{"ok": bool}``.

``GET`` and ``verify`` answer only a caller who may read an object that names the blob
(:meth:`~luminary.server._auth.Guard.check_blob`). A stored upload (``PUT`` or a completed
session) is recorded as the caller's: they hold the blob from then on and may name it in runs,
models and datasets of their projects, even when the bytes were stored already.

Resumable uploads (large files; the client uses them above a size threshold):

- ``POST /uploads`` ``{digest, size}`` opens a session, or answers the caller's one already open
  for that digest with its current ``offset`` (so a restarted client resumes), or
  ``{"exists": true}`` when the blob is stored already and the caller holds it. The session id
  is the digest itself, and a session belongs to the caller who opened it: each caller has
  their own for a blob, and another caller's session is not found (nobody completes an upload
  with bytes someone else sent).
- ``PUT /uploads/{id}`` appends a chunk at ``Content-Range: bytes START-END/TOTAL`` (or
  ``?offset=START``); a START other than the current offset is refused with ``409`` and
  ``details.offset``. An optional ``x-luminary-chunk-blake3`` header is checked when the chunk
  has arrived whole: a mismatch drops the chunk again (``400``).
- ``GET``/``HEAD /uploads/{id}``: the current offset (also in the ``upload-offset`` header).
- ``POST /uploads/{id}/complete`` hashes the whole file; a match is stored in the BlobStore
  atomically, a mismatch drops the session (``400``). Nothing is visible in the blob store
  before that.

Sessions are files in the server's upload folder (``<id>.<owner>.part`` and ``.json``, where
``<owner>`` is a hash of the caller's user name), so they
survive a restart of the server (also a ``kill -9``: the offset is the size of the part file,
whose bytes are a prefix of what the client sent). Sessions idle for :data:`SESSION_TTL_S`
are swept when the server starts and hourly on ``POST /uploads``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from luminary.auth.models import Principal
from luminary.errors import InvalidArgumentError, NotFoundError
from luminary.server._app import ok
from luminary.server._auth import Caller, Guard
from luminary.server._errors import error_response
from luminary.storage.blobs import BlobStore, check_digest, hasher
from luminary.store import Store

__all__ = ["CHUNK_HASH_HEADER", "OFFSET_HEADER", "SESSION_TTL_S", "router", "sweep_uploads"]

log = logging.getLogger("luminary.server")

_CHUNK = 4 << 20
#: Upload sessions (and spooled single uploads) idle this long are removed.
SESSION_TTL_S = 24 * 3600.0
_SWEEP_EVERY_S = 3600.0
#: Response header with a session's current offset; request header with a chunk's BLAKE3.
OFFSET_HEADER = "upload-offset"
CHUNK_HASH_HEADER = "x-luminary-chunk-blake3"
_SESSION_ID = re.compile(r"[0-9a-f]{64}")
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class UploadIn(BaseModel):
    digest: str
    size: int = Field(ge=0)


def router(store: Store, spool: Path, guard: Guard) -> APIRouter:
    blobs = store.blobs
    if not isinstance(blobs, BlobStore):
        msg = f"the server needs a local or object-store BlobStore behind it, not {blobs!r}"
        raise InvalidArgumentError(msg)
    r = APIRouter()

    @r.put("/blobs/{digest}")
    async def put_blob(digest: str, request: Request, caller: Caller) -> Response:
        guard.check_uploader(caller)
        check_digest(digest)
        spool.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=spool, prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                got, size = await _spool(request, out)
            if got != digest:
                msg = (
                    f"the uploaded bytes hash to {got}, not to {digest} named in the URL; "
                    "nothing was stored. Upload the file again (it may have changed meanwhile)"
                )
                raise InvalidArgumentError(msg)
            await run_in_threadpool(blobs.put_file_as, tmp, digest, size)
        finally:
            Path(tmp).unlink(missing_ok=True)
        await run_in_threadpool(guard.record_upload, caller, digest)
        return ok({"digest": digest, "size": size}, 201)

    @r.head("/blobs/{digest}")
    def head_blob(digest: str, caller: Caller) -> Response:
        check_digest(digest)
        # a blob that may have been written unverified and does not match is not there: the
        # client then uploads it again, which replaces it. To a caller who does not hold it,
        # it is not there either: their upload proves they have the bytes.
        if not guard.holds_blob(caller, digest) or not blobs.reusable(digest):
            msg = f"blob {digest} is not in the store at {blobs.url}"
            raise NotFoundError(msg)
        size = blobs.size(digest)
        return Response(status_code=200, headers={"content-length": str(size)})

    @r.get("/blobs/{digest}")
    def get_blob(digest: str, caller: Caller) -> Response:
        guard.check_blob(caller, check_digest(digest))
        size = blobs.size(digest)  # NotFoundError (404) before any byte is sent
        try:
            raw: BinaryIO = blobs.fs.open(blobs.key(digest), "rb")
        except FileNotFoundError:
            msg = f"blob {digest} is not in the store at {blobs.url}"
            raise NotFoundError(msg) from None
        return StreamingResponse(
            _chunks(raw),
            media_type="application/octet-stream",
            headers={"content-length": str(size)},
        )

    @r.post("/blobs/{digest}/verify")
    def verify_blob(digest: str, caller: Caller) -> Response:
        guard.check_blob(caller, check_digest(digest))
        return ok({"ok": blobs.verify(digest)})

    _upload_routes(r, blobs, spool, guard)
    return r


# -- resumable upload sessions -------------------------------------------------------------
class _Sessions:
    """The session files under ``folder`` and one lock per session (this process). A session
    is named by its id (the digest) and its owner (the user who opened it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.locks: dict[str, asyncio.Lock] = {}
        self.last_sweep = 0.0

    def check_id(self, upload_id: str) -> str:
        if not _SESSION_ID.fullmatch(upload_id):
            msg = (
                f"upload session id {upload_id!r} is not valid; an id is the 64 lower-case hex "
                "characters POST /uploads answered"
            )
            raise InvalidArgumentError(msg)
        return upload_id

    def stem(self, upload_id: str, owner: str) -> str:
        return f"{self.check_id(upload_id)}.{hashlib.sha256(owner.encode()).hexdigest()[:16]}"

    def part(self, upload_id: str, owner: str) -> Path:
        return self.folder / f"{self.stem(upload_id, owner)}.part"

    def meta_path(self, upload_id: str, owner: str) -> Path:
        return self.folder / f"{self.stem(upload_id, owner)}.json"

    def meta(self, upload_id: str, owner: str) -> dict[str, Any]:
        meta: Any = None
        with contextlib.suppress(FileNotFoundError, ValueError):
            meta = json.loads(self.meta_path(upload_id, owner).read_text())
        if not isinstance(meta, dict) or not self.part(upload_id, owner).is_file():
            msg = (
                f"no upload session {upload_id!r} of yours (never opened, completed, dropped "
                "after a hash mismatch, or swept after a day idle); open one with POST /uploads"
            )
            raise NotFoundError(msg)
        return meta

    def offset(self, upload_id: str, owner: str) -> int:
        try:
            return self.part(upload_id, owner).stat().st_size
        except FileNotFoundError:
            self.meta(upload_id, owner)  # raises the not-found message
            raise

    def create(self, digest: str, size: int, owner: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.part(digest, owner).open("wb").close()
        meta = {"digest": digest, "size": size, "created": time.time()}
        tmp = self.folder / f".{self.stem(digest, owner)}.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.meta_path(digest, owner))

    def drop(self, upload_id: str, owner: str) -> None:
        self.meta_path(upload_id, owner).unlink(missing_ok=True)
        self.part(upload_id, owner).unlink(missing_ok=True)
        self.locks.pop(self.stem(upload_id, owner), None)

    def lock(self, upload_id: str, owner: str) -> asyncio.Lock:
        return self.locks.setdefault(self.stem(upload_id, owner), asyncio.Lock())

    def state(self, upload_id: str, owner: str) -> dict[str, Any]:
        meta = self.meta(upload_id, owner)
        return {
            "id": upload_id,
            "digest": meta["digest"],
            "size": meta["size"],
            "offset": self.offset(upload_id, owner),
            "exists": False,
        }


def sweep_uploads(
    folder: Path, older_than_s: float = SESSION_TTL_S, *, now: float | None = None
) -> int:
    """Remove upload sessions and spooled single uploads idle for ``older_than_s`` seconds
    (by the last write, against ``now``: wall-clock seconds, the current time unless given);
    returns how many files were removed."""
    cutoff = (time.time() if now is None else now) - older_than_s
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        name = entry.name
        if not name.endswith((".part", ".json", ".json.tmp")) and not name.startswith("upload-"):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if info.st_mtime > cutoff:
                continue
            if name.endswith(".json"):  # a session's sidecar goes with its part file
                part = folder / (name[: -len(".json")] + ".part")
                with contextlib.suppress(FileNotFoundError):
                    if part.stat().st_mtime > cutoff:
                        continue
            os.unlink(entry.path)
            removed += 1
        except FileNotFoundError:
            continue
    return removed


def _upload_routes(r: APIRouter, blobs: BlobStore, spool: Path, guard: Guard) -> None:
    sessions = _Sessions(spool)
    with contextlib.suppress(OSError):
        sessions.last_sweep = time.time()
        if n := sweep_uploads(spool):
            log.info("swept %d stale upload files from %s", n, spool)

    def answer(state: dict[str, Any], status: int = 200) -> Response:
        resp = ok(state, status)
        resp.headers[OFFSET_HEADER] = str(state["offset"])
        return resp

    @r.post("/uploads")
    async def open_upload(body: UploadIn, caller: Caller) -> Response:
        guard.check_uploader(caller)
        digest = check_digest(body.digest)
        now = time.time()
        if now - sessions.last_sweep > _SWEEP_EVERY_S:
            sessions.last_sweep = now
            await run_in_threadpool(sweep_uploads, spool)
        me = caller.user
        if await run_in_threadpool(_stored_and_held, blobs, guard, caller, digest, body.size):
            size = body.size
            return answer(
                {"id": None, "digest": digest, "size": size, "offset": size, "exists": True}
            )
        async with sessions.lock(digest, me):
            try:
                state = sessions.state(digest, me)
            except NotFoundError:
                state = None
            if state is not None and state["size"] == body.size:
                return answer(state)
            # none yet, or one claiming another size for this digest: one of the two claims is
            # wrong, and the hash check on completion finds out which; start afresh.
            sessions.create(digest, body.size, me)
            return answer(sessions.state(digest, me), 201)

    @r.get("/uploads/{upload_id}")
    def get_upload(upload_id: str, caller: Caller) -> Response:
        guard.check_uploader(caller)
        return answer(sessions.state(upload_id, caller.user))

    @r.head("/uploads/{upload_id}")
    def head_upload(upload_id: str, caller: Caller) -> Response:
        guard.check_uploader(caller)
        state = sessions.state(upload_id, caller.user)
        headers = {OFFSET_HEADER: str(state["offset"]), "upload-length": str(state["size"])}
        return Response(status_code=200, headers=headers)

    @r.put("/uploads/{upload_id}")
    async def put_chunk(
        upload_id: str, request: Request, caller: Caller, offset: int | None = None
    ) -> Response:
        guard.check_uploader(caller)
        meta = sessions.meta(upload_id, caller.user)
        size = int(meta["size"])
        start, end = _chunk_range(request.headers.get("content-range"), offset, size)
        lock = sessions.lock(upload_id, caller.user)
        if lock.locked():
            current = sessions.offset(upload_id, caller.user)
            msg = (
                f"upload session {upload_id} is receiving another chunk right now (offset "
                f"{current}); ask GET /uploads/{upload_id} for the offset and send from there"
            )
            return _conflict(msg, current)
        async with lock:
            current = sessions.offset(upload_id, caller.user)
            if start != current:
                msg = (
                    f"the chunk starts at byte {start} but upload session {upload_id} has "
                    f"{current} bytes; send the chunk that starts at {current}"
                )
                return _conflict(msg, current)
            expected = request.headers.get(CHUNK_HASH_HEADER)
            part = sessions.part(upload_id, caller.user)
            limit = (end + 1 if end is not None else size) - start
            with part.open("r+b") as out:
                out.seek(start)
                try:
                    got, n = await _spool(request, out, limit=limit)
                except _TooLong:
                    out.truncate(start)
                    msg = (
                        f"the chunk is longer than Content-Range says or runs past the "
                        f"session's size {size}; it was dropped, the offset is still {start}"
                    )
                    raise InvalidArgumentError(msg) from None
                except ClientDisconnect:
                    # keep what arrived (a prefix of the client's bytes); nobody reads the answer
                    return Response(status_code=400)
                complete = end is None or n == end + 1 - start
                if expected is not None and complete and got != expected.lower():
                    out.truncate(start)
                    msg = (
                        f"the chunk at byte {start} hashes to {got}, not to {expected} named in "
                        f"{CHUNK_HASH_HEADER}; it was dropped, send it again from {start}"
                    )
                    raise InvalidArgumentError(msg)
                out.truncate(start + n)
        return answer(sessions.state(upload_id, caller.user))

    @r.post("/uploads/{upload_id}/complete")
    async def complete_upload(upload_id: str, caller: Caller) -> Response:
        guard.check_uploader(caller)
        async with sessions.lock(upload_id, caller.user):
            meta = sessions.meta(upload_id, caller.user)
            digest, size = str(meta["digest"]), int(meta["size"])
            part = sessions.part(upload_id, caller.user)
            have = part.stat().st_size
            if have != size:
                msg = (
                    f"upload session {upload_id} has {have} of {size} bytes; send the rest "
                    f"from byte {have} before completing it"
                )
                return _conflict(msg, have)
            got = await run_in_threadpool(_hash_path, part)
            if got != digest:
                sessions.drop(upload_id, caller.user)
                msg = (
                    f"the uploaded bytes hash to {got}, not to {digest} the session was opened "
                    "for; nothing was stored and the session was dropped. Upload the file again "
                    "(it may have changed meanwhile)"
                )
                raise InvalidArgumentError(msg)
            await run_in_threadpool(blobs.put_file_as, part, digest, size)
            sessions.drop(upload_id, caller.user)
        await run_in_threadpool(guard.record_upload, caller, digest)
        return ok({"digest": digest, "size": size}, 201)


def _stored_and_held(
    blobs: BlobStore, guard: Guard, caller: Principal, digest: str, size: int
) -> bool:
    """Whether an upload of ``digest`` can be skipped: stored whole, and ``caller`` holds it
    (anyone else sends the bytes, which proves they have them)."""
    return guard.holds_blob(caller, digest) and blobs.reusable(digest, size)


class _TooLong(Exception):
    """A chunk longer than it said it was."""


def _chunk_range(header: str | None, offset: int | None, size: int) -> tuple[int, int | None]:
    """(START, END or None) of a chunk from ``Content-Range`` or ``?offset=``."""
    if header is None:
        if offset is None:
            msg = (
                "a chunk needs `Content-Range: bytes START-END/TOTAL` or `?offset=START`; "
                "got neither"
            )
            raise InvalidArgumentError(msg)
        if offset < 0:
            msg = f"offset={offset} is not valid; give the session's current offset (>= 0)"
            raise InvalidArgumentError(msg)
        return offset, None
    m = _RANGE.fullmatch(header.strip())
    if m is None:
        msg = f"Content-Range {header!r} is not valid; give `bytes START-END/TOTAL`"
        raise InvalidArgumentError(msg)
    start, end, total = int(m.group(1)), int(m.group(2)), m.group(3)
    if end < start or end >= size or (total != "*" and int(total) != size):
        msg = f"Content-Range {header!r} does not fit the session: bytes are 0-{size - 1} of {size}"
        raise InvalidArgumentError(msg)
    return start, end


def _conflict(message: str, offset: int) -> Response:
    resp = error_response(409, "invalid_state", message, {"offset": offset})
    resp.headers[OFFSET_HEADER] = str(offset)
    return resp


def _hash_path(path: Path) -> str:
    """BLAKE3 of a file by buffered reads (not a memory map: the server's RSS stays flat)."""
    h = hasher()
    with path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            h.update(chunk)
    return str(h.hexdigest())


async def _spool(request: Request, out: BinaryIO, *, limit: int | None = None) -> tuple[str, int]:
    """Write the request body to ``out`` in large slices, hashing off the event loop; more than
    ``limit`` bytes raise :class:`_TooLong`. A client that goes away mid-body raises
    ``ClientDisconnect`` after what arrived before it was written."""
    h = hasher()
    size = 0
    pending = bytearray()

    def flush(data: bytes) -> None:
        h.update(data)
        out.write(data)

    try:
        async for chunk in request.stream():
            pending += chunk
            if limit is not None and size + len(pending) > limit:
                raise _TooLong
            if len(pending) >= _CHUNK:
                size += len(pending)
                await run_in_threadpool(flush, bytes(pending))
                pending.clear()
    except ClientDisconnect:
        if pending:
            await run_in_threadpool(flush, bytes(pending))
        raise
    if pending:
        size += len(pending)
        await run_in_threadpool(flush, bytes(pending))
    return str(h.hexdigest()), size


def _chunks(raw: BinaryIO) -> Iterator[bytes]:
    with raw:
        while chunk := raw.read(1 << 20):
            yield chunk
