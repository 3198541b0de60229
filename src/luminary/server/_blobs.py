"""Blobs: ``/api/v1/blobs/{digest}``, streamed both ways, never held whole in memory.

- ``PUT`` spools the request body to a temporary file, hashing it as it arrives; a body whose
  BLAKE3 is not the digest in the URL is refused (400) and nothing is stored. A matching one is
  stored through the server's :class:`~luminary.store.BlobStore` (atomic, as always).
- ``GET`` streams the stored bytes; the client verifies them against the digest as they come.
- ``HEAD`` answers whether the blob exists and its size (``content-length``).
- ``POST /blobs/{digest}/verify`` re-hashes the stored bytes on the server: ``{"ok": bool}``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from luminary.errors import InvalidArgumentError, NotFoundError
from luminary.server._app import ok
from luminary.server._auth import Caller, Guard
from luminary.store._base import Store
from luminary.store.blobs import BlobStore, _hasher, check_digest

__all__ = ["router"]

_CHUNK = 4 << 20


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
        return ok({"digest": digest, "size": size}, 201)

    @r.head("/blobs/{digest}")
    def head_blob(digest: str) -> Response:
        size = blobs.size(digest)
        return Response(status_code=200, headers={"content-length": str(size)})

    @r.get("/blobs/{digest}")
    def get_blob(digest: str) -> Response:
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
    def verify_blob(digest: str) -> Response:
        return ok({"ok": blobs.verify(digest)})

    return r


async def _spool(request: Request, out: BinaryIO) -> tuple[str, int]:
    """Write the request body to ``out`` in large slices, hashing off the event loop."""
    h = _hasher()
    size = 0
    pending = bytearray()

    def flush(data: bytes) -> None:
        h.update(data)
        out.write(data)

    async for chunk in request.stream():
        pending += chunk
        if len(pending) >= _CHUNK:
            size += len(pending)
            await run_in_threadpool(flush, bytes(pending))
            pending.clear()
    if pending:
        size += len(pending)
        await run_in_threadpool(flush, bytes(pending))
    return str(h.hexdigest()), size


def _chunks(raw: BinaryIO) -> Iterator[bytes]:
    with raw:
        while chunk := raw.read(1 << 20):
            yield chunk
