"""KServe v2 over HTTP/REST, as Triton speaks it: a bare ASGI application.

No web framework on this path: routing is a split of the path, the JSON header is parsed with
orjson when installed, and binary tensors (Triton's binary tensor extension, announced by the
``Inference-Header-Content-Length`` header) become NumPy views over the request body. Errors
answer ``{"error": message}`` with 400 (bad request), 404 (no such model), 503 (not ready,
overloaded, timed out) or 500.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import numpy as np

from luminary.serving._core import Core, InputTensor
from luminary.serving._errors import (
    InvalidInputError,
    ModelNotFoundError,
    RequestTooLargeError,
    ServingError,
    UnavailableError,
)
from luminary.serving._frontend import (
    DEFAULT_MAX_BODY,
    check_model_control,
    config_json,
    metadata_json,
    refuse_model_control,
    server_metadata,
    statistics_json,
)
from luminary.serving._repository import LoadedModel, parse_version

try:  # orjson is in the server extra; the standard library is the fallback
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _dumps: Callable[[Any], bytes] = orjson.dumps
except ImportError:  # pragma: no cover - exercised only without the extra
    _loads = json.loads

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

HEADER_LENGTH = b"inference-header-content-length"
OFFLOAD_BYTES = 64 << 10  # bodies from this size are decoded off the event loop
REPOSITORY_BODY = 1 << 20  # a repository request is a small JSON object
_JSON = [(b"content-type", b"application/json")]


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json_response(status: int, body: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return status, _JSON, _dumps(body)


class InferenceApp:
    """The ASGI application; one per server process."""

    def __init__(
        self,
        core: Core,
        *,
        live: Callable[[], bool] = lambda: True,
        max_inflight: int = 0,
        max_body: int = DEFAULT_MAX_BODY,
        model_control: str = "none",
    ) -> None:
        self.core = core
        self.live = live
        self.max_inflight = max_inflight  # 0: no limit
        self.max_body = max_body
        self.model_control = check_model_control(model_control)
        self._inflight = 0  # infer requests in progress (the event loop is single-threaded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            status, headers, payload = await self._route(scope, receive)
        except ServingError as exc:
            status, headers, payload = _json_response(exc.http_status, {"error": str(exc)})
        except HttpError as exc:
            status, headers, payload = _json_response(exc.status, {"error": str(exc)})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _route(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        method, path = scope["method"], scope["path"]
        parts = path.strip("/").split("/")
        if not parts or parts[0] != "v2":
            raise HttpError(404, f"no endpoint {path}; the protocol's endpoints start with /v2")
        rest = parts[1:]
        repo = self.core.repository
        if method == "POST" and len(rest) >= 2 and rest[0] == "models" and rest[-1] == "infer":
            name, version = _model_path(rest[1:-1])
            if self.max_inflight and self._inflight >= self.max_inflight:
                msg = (
                    f"the server is overloaded: {self._inflight} requests in flight (limit "
                    f"{self.max_inflight}, --max-inflight); retry later or on another server"
                )
                raise UnavailableError(msg)
            self._inflight += 1  # admitted before a byte of the body is read
            try:
                body = await _read_body(scope, receive, self.max_body)
                return await self._infer(name, version, scope, body)
            finally:
                self._inflight -= 1
        if method == "GET":
            if not rest:
                return _json_response(200, server_metadata())
            if rest == ["health", "live"]:
                return (200 if self.live() else 503), [], b""
            if rest == ["health", "ready"]:
                return (200 if self.live() and repo.ready() else 503), [], b""
            if rest == ["models", "stats"]:
                return _json_response(200, statistics_json(repo, "", ""))
            if len(rest) >= 2 and rest[0] == "models":
                tail = rest[-1]
                if tail in ("ready", "config", "stats"):
                    name, version = _model_path(rest[1:-1])
                    if tail == "ready":
                        try:
                            repo.get(name, version)
                        except ServingError:
                            return 400, [], b""
                        return 200, [], b""
                    if tail == "config":
                        return _json_response(200, config_json(repo.get(name, version)))
                    return _json_response(200, statistics_json(repo, name, version))
                name, version = _model_path(rest[1:])
                return _json_response(200, metadata_json(repo, name, version))
        if method == "POST" and rest[:1] == ["repository"]:
            return await self._repository(rest[1:], scope, receive)
        raise HttpError(404, f"no endpoint {method} {path}")

    async def _repository(
        self, rest: list[str], scope: Scope, receive: Receive
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        repo = self.core.repository
        changes = len(rest) == 3 and rest[0] == "models" and rest[2] in ("load", "unload")
        if changes:
            refuse_model_control(self.model_control, rest[2])
        body = await _read_body(scope, receive, min(self.max_body, REPOSITORY_BODY))
        request = _parse_json(body) if body else {}
        if rest == ["index"]:
            rows = repo.index()
            if request.get("ready"):
                rows = [r for r in rows if r["state"] == "READY"]
            return _json_response(200, [{k: v for k, v in r.items() if v} for r in rows])
        if changes:
            name = unquote(rest[1])
            params = json_object(request.get("parameters"), "the request's 'parameters'")
            if any(k == "config" or k.startswith("file:") for k in params):
                raise HttpError(
                    400,
                    "loading a model with an uploaded configuration or files is not "
                    "supported; put the model in the repository or the registry",
                )
            loop = asyncio.get_running_loop()
            if rest[2] == "load":
                entry = await loop.run_in_executor(None, lambda: repo.load(name, force=True))
                if not entry.versions:
                    raise HttpError(400, f"failed to load {name!r}: {entry.reason}")
            else:
                repo.entry(name)
                await loop.run_in_executor(None, repo.unload, name)
            return 200, _JSON, b"{}"
        raise HttpError(404, "no such repository endpoint")

    async def _infer(
        self, name: str, version: str, scope: Scope, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        header_length = None
        encoding = None
        for key, value in scope["headers"]:
            if key == HEADER_LENGTH:
                header_length = value
            elif key == b"content-encoding":
                encoding = value

        def decode() -> _Decoded:
            raw = body if encoding is None else _decompress(encoding, body, self.max_body)
            return self._decode(name, version, raw, header_length)

        # Large bodies are inflated, parsed and converted on a worker thread: other clients'
        # requests keep being answered meanwhile (zlib and NumPy release the GIL).
        offload = encoding is not None or len(body) >= OFFLOAD_BYTES
        decoded, loaded, result = await self.core.infer_async(decode, offload=offload)
        requested = decoded.requested or [
            (t.name, decoded.binary_default) for t in loaded.spec.outputs
        ]
        size = sum(result[n].nbytes for n, _ in requested)
        if size >= OFFLOAD_BYTES:
            return await asyncio.to_thread(_encode, loaded, decoded, requested, result)
        return _encode(loaded, decoded, requested, result)

    def _decode(
        self,
        name: str,
        version: str,
        body: bytes,
        header_length: bytes | None,
    ) -> _Decoded:
        """The request's JSON header and tensors, read from the body (any thread)."""
        if header_length is not None:
            try:
                json_size = int(header_length)
            except ValueError:
                json_size = -1
            if json_size < 0 or json_size > len(body):
                msg = (
                    f"Inference-Header-Content-Length is {header_length.decode(errors='replace')}"
                    f" but the body has {len(body)} bytes"
                )
                raise InvalidInputError(msg)
        else:
            json_size = len(body)
        request = _parse_json(body[:json_size])
        view = memoryview(body)
        offset = json_size
        tensors = []
        inputs = request.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            msg = "the request has no 'inputs' list"
            raise InvalidInputError(msg)
        for item in inputs:
            if not isinstance(item, dict):
                msg = "each entry of 'inputs' must be an object"
                raise InvalidInputError(msg)
            tname = item.get("name")
            datatype = item.get("datatype")
            shape = item.get("shape")
            if not isinstance(tname, str) or not isinstance(datatype, str):
                msg = "each input needs a 'name' and a 'datatype'"
                raise InvalidInputError(msg)
            if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) for d in shape
            ):
                msg = f"input {tname!r}: 'shape' must be a list of integers"
                raise InvalidInputError(msg)
            params = json_object(item.get("parameters"), f"input {tname!r}: 'parameters'")
            size = params.get("binary_data_size")
            if size is not None:
                if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                    msg = f"input {tname!r}: bad binary_data_size {size!r}"
                    raise InvalidInputError(msg)
                if offset + size > len(body):
                    msg = (
                        f"input {tname!r}: binary_data_size {size} runs past the end of the "
                        f"body ({len(body) - offset} bytes left); the body is truncated"
                    )
                    raise InvalidInputError(msg)
                data: Any = view[offset : offset + size]
                offset += size
            else:
                data = item.get("data")
                if data is None:
                    msg = f"input {tname!r} has neither 'data' nor binary data"
                    raise InvalidInputError(msg)
            tensors.append(InputTensor(tname, datatype, tuple(shape), data))
        if offset != len(body):
            msg = f"the body has {len(body) - offset} bytes beyond the declared binary inputs"
            raise InvalidInputError(msg)
        parameters = json_object(request.get("parameters"), "the request's 'parameters'")
        wanted = request.get("outputs")
        requested: list[tuple[str, bool]] = []
        binary_default = bool(parameters.get("binary_data_output", False))
        if wanted is not None:
            if not isinstance(wanted, list):
                msg = "'outputs' must be a list"
                raise InvalidInputError(msg)
            for out in wanted:
                if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                    msg = "each entry of 'outputs' needs a 'name'"
                    raise InvalidInputError(msg)
                p = json_object(out.get("parameters"), f"output {out['name']!r}: 'parameters'")
                requested.append((out["name"], bool(p.get("binary_data", binary_default))))
        outputs = [n for n, _ in requested]
        return _Decoded(
            request, name, version, tensors, outputs, parameters, requested, binary_default
        )


@dataclass(slots=True)
class _Decoded:
    """A decoded request (a :class:`~luminary.serving._core.Request`) and how to answer it."""

    request: dict[str, Any]  # the JSON header
    model: str
    version: str
    inputs: list[InputTensor]
    outputs: list[str]
    parameters: dict[str, Any]
    requested: list[tuple[str, bool]]  # (output, in binary); empty: all, binary_default
    binary_default: bool


def _encode(
    loaded: LoadedModel,
    decoded: _Decoded,
    requested: list[tuple[str, bool]],
    result: dict[str, np.ndarray],
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The answer's JSON header and binary outputs (any thread)."""
    outputs = []
    blobs = []
    for oname, binary in requested:
        array = result[oname]
        spec = loaded.spec.output(oname)
        assert spec is not None
        entry: dict[str, Any] = {
            "name": oname,
            "datatype": spec.datatype,
            "shape": list(array.shape),
        }
        if binary:
            raw = array.tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = array.ravel().tolist()
        outputs.append(entry)
    response: dict[str, Any] = {
        "model_name": loaded.spec.name,
        "model_version": loaded.spec.version,
        "outputs": outputs,
    }
    if "id" in decoded.request:
        response["id"] = decoded.request["id"]
    head = _dumps(response)
    if not blobs:
        return 200, _JSON, head
    headers = [
        (b"content-type", b"application/octet-stream"),
        (HEADER_LENGTH, str(len(head)).encode()),
    ]
    return 200, headers, b"".join([head, *blobs])


def json_object(value: Any, where: str) -> dict[str, Any]:
    """An optional JSON object of the request: absent (or null) is empty, anything else but an
    object is refused (``"parameters": 0`` must not pass as "no parameters")."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        msg = f"{where} must be an object, not {type(value).__name__} {value!r:.60}"
        raise InvalidInputError(msg)
    return value


def _model_path(parts: list[str]) -> tuple[str, str]:
    """``[name]`` or ``[name, "versions", v]``."""
    if len(parts) == 1 and parts[0]:
        return unquote(parts[0]), ""
    if len(parts) == 3 and parts[1] == "versions" and parts[2]:
        return unquote(parts[0]), parse_version(unquote(parts[2]))
    msg = "no such model endpoint"
    raise ModelNotFoundError(msg)


def _parse_json(raw: bytes | memoryview) -> dict[str, Any]:
    try:
        value = _loads(bytes(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"the request's JSON header does not parse: {exc}"
        raise InvalidInputError(msg) from None
    if not isinstance(value, dict):
        msg = "the request's JSON header must be an object"
        raise InvalidInputError(msg)
    return value


def _too_large(what: str, limit: int) -> RequestTooLargeError:
    msg = (
        f"{what} is over the server's limit of {limit} bytes (--max-body-bytes); send smaller "
        "batches, or raise the limit"
    )
    return RequestTooLargeError(msg)


def _decompress(encoding: bytes, body: bytes, limit: int) -> bytes:
    """The body inflated, to at most ``limit`` bytes (a small bomb cannot fill the memory)."""
    if encoding not in (b"gzip", b"deflate"):
        msg = f"Content-Encoding {encoding.decode(errors='replace')} is not supported"
        raise InvalidInputError(msg)
    inflater = zlib.decompressobj(31 if encoding == b"gzip" else 15)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        msg = f"the body is not valid {encoding.decode()}: {exc}"
        raise InvalidInputError(msg) from None
    if len(out) > limit or inflater.unconsumed_tail:
        what = f"the {encoding.decode()} body, inflated,"
        raise _too_large(what, limit)
    if not inflater.eof:
        msg = f"the body is not valid {encoding.decode()}: it ends before the stream does"
        raise InvalidInputError(msg)
    return out


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request's body, refused (413) as soon as it is known to exceed ``limit``: from its
    declared Content-Length before reading, or from the bytes as they stream in."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise HttpError(400, "Content-Length is not a number") from None
            if declared > limit:
                what = f"the body of {declared} bytes (Content-Length)"
                raise _too_large(what, limit)
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "the client disconnected before the body was complete")
        chunk = message.get("body", b"")
        if chunk:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                what = f"the body (over {size} bytes so far)"
                raise _too_large(what, limit)
        if not message.get("more_body", False):
            break
    if len(chunks) == 1:
        return bytes(chunks[0])
    return b"".join(chunks)
