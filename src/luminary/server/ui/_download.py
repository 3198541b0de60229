"""Downloads from the web pages: never a complete ``200`` with bytes that were not verified.

A browser does not check a blob's hash, so the server does, before the last byte goes out:

- a blob of at most :data:`VERIFY_FIRST_BYTES` is read whole and verified, then sent; damaged
  stored bytes answer an error page (``500``) and no byte of the file;
- a larger blob is streamed with its ``content-length`` while it is hashed, one chunk held back;
  only when the whole blob has matched its digest (and its recorded size) does the held-back
  chunk go out. Otherwise the connection is aborted short of ``content-length``, so the browser
  (or curl) reports a failed, incomplete download instead of saving damaged bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from fastapi.responses import Response, StreamingResponse

from luminary.errors import IntegrityError
from luminary.store import Store

__all__ = ["VERIFY_FIRST_BYTES", "download"]

#: Blobs up to this size are verified whole before the answer starts.
VERIFY_FIRST_BYTES = 8 << 20
_CHUNK = 1 << 20


def download(store: Store, digest: str, size: int, path: str) -> Response:
    """The answer that downloads blob ``digest`` (recorded as ``size`` bytes) as ``path``'s
    file name; :class:`~luminary.errors.IntegrityError` when a small blob is damaged."""
    name = quote(path.rsplit("/", 1)[-1], safe="")  # RFC 5987: any name, as UTF-8
    headers = {
        "content-length": str(size),
        "content-disposition": f"attachment; filename*=UTF-8''{name}",
    }
    media = "application/octet-stream"
    if size <= VERIFY_FIRST_BYTES:
        data = store.blobs.read_bytes(digest)  # verified (pages run in the thread pool)
        if len(data) != size:
            raise _damaged(digest, size, len(data))
        return Response(data, media_type=media, headers=headers)
    return StreamingResponse(
        _verified_chunks(store, digest, size), media_type=media, headers=headers
    )


def _verified_chunks(store: Store, digest: str, size: int) -> Iterator[bytes]:
    """The blob's bytes, the last chunk only once all of them matched the digest and ``size``:
    a mismatch raises mid-stream, which aborts the connection short of ``content-length``."""
    sent = 0
    held = b""
    with store.blobs.open_verified(digest) as stream:  # raises at the end on a mismatch
        while block := stream.read(_CHUNK):
            if held:
                yield held
                sent += len(held)
            held = block
            if sent + len(held) > size:
                break
    if sent + len(held) != size:
        raise _damaged(digest, size, sent + len(held))
    if held:
        yield held


def _damaged(digest: str, size: int, got: int) -> IntegrityError:
    return IntegrityError(
        f"blob {digest} holds {got} bytes where {size} were recorded; it was not sent. "
        "Restore it on the server (luminary store check) or log the artifact again"
    )
