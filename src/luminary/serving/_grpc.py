"""KServe v2 over gRPC: service ``inference.GRPCInferenceService``, as Triton serves it.

A synchronous grpcio server with a thread pool (on one core it answers more requests per
second than ``grpc.aio``). Tensors arrive in ``raw_input_contents`` (NumPy views, no copy) or
in typed ``contents``; outputs always go back in ``raw_output_contents``, as Triton's clients
expect. ``ModelStreamInfer`` pipelines: a reader thread queues each request as it arrives and
the responses stream back in order.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from luminary.errors import InvalidArgumentError
from luminary.serving._core import Core, InputTensor, outputs_of
from luminary.serving._errors import InvalidInputError, ModelExecutionError, ServingError
from luminary.serving._frontend import (
    DEFAULT_MAX_BODY,
    EXTENSIONS,
    SERVER_NAME,
    check_model_control,
    config_proto,
    metadata_json,
    refuse_model_control,
    server_version,
    statistics_json,
)
from luminary.serving._proto import grpc_service_pb2 as pb
from luminary.serving._repository import LoadedModel
from luminary.serving._types import CONTENTS_FIELD

log = logging.getLogger("luminary.serving")

SERVICE = "inference.GRPCInferenceService"
MAX_SEND = 1 << 30  # answers are the server's own; requests are bounded by max_message


def _parameters(params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, which) if which else None
    return out


def _tensors(request: Any) -> list[InputTensor]:
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        msg = (
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
            "give one per input, in order"
        )
        raise InvalidInputError(msg)
    tensors = []
    for i, t in enumerate(request.inputs):
        data: Any
        if raw:
            data = raw[i]
        else:
            field = CONTENTS_FIELD.get(t.datatype)
            if field is None:
                msg = f"input {t.name!r}: datatype {t.datatype!r} cannot be sent in 'contents'"
                raise InvalidInputError(msg)
            data = list(getattr(t.contents, field))
        tensors.append(InputTensor(t.name, t.datatype, tuple(t.shape), data))
    return tensors


def _response(loaded: LoadedModel, request: Any, result: dict[str, np.ndarray]) -> Any:
    response = pb.ModelInferResponse(
        model_name=loaded.spec.name, model_version=loaded.spec.version, id=request.id
    )
    names = [o.name for o in request.outputs] or [t.name for t in loaded.spec.outputs]
    for name in names:
        array = result[name]
        spec = loaded.spec.output(name)
        assert spec is not None
        response.outputs.add(name=name, datatype=spec.datatype, shape=array.shape)
        response.raw_output_contents.append(array.tobytes())
    return response


def _invalid_message(message_type: Any, exc: Exception) -> str:
    return f"the request is not a valid {message_type.DESCRIPTOR.full_name} message ({exc})"


def _parsing(method: Any, message_type: Any) -> Any:
    """``method`` taking the raw request bytes: parsed, or INVALID_ARGUMENT."""
    parse = message_type.FromString

    def handler(raw: bytes, context: Any) -> Any:
        try:
            request = parse(raw)
        except DecodeError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, _invalid_message(message_type, exc))
            raise
        return method(request, context)

    return handler


class Servicer:
    """The service's methods; registered as a generic handler (no generated stubs needed)."""

    def __init__(self, core: Core, live: Any = lambda: True, model_control: str = "none") -> None:
        self.core = core
        self.live = live
        self.model_control = check_model_control(model_control)

    def ModelInfer(self, request: Any, context: Any) -> Any:
        try:
            parameters = _parameters(request.parameters)
            remaining = context.time_remaining() if context is not None else None
            if remaining is not None and "timeout" not in parameters:
                parameters["timeout"] = max(1, int(remaining * 1e6))
            loaded, result = self.core.infer(
                request.model_name,
                request.model_version,
                _tensors(request),
                [o.name for o in request.outputs],
                parameters,
            )
            return _response(loaded, request, result)
        except ServingError as exc:
            context.abort(getattr(grpc.StatusCode, exc.grpc_code), str(exc))
            raise  # abort raises; this keeps type checkers informed

    def ModelStreamInfer(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        # Unbounded: the reader never blocks, so it always sees the end of a cancelled stream.
        inflight: queue.Queue[Any] = queue.Queue()
        done = object()

        def reader() -> None:
            try:
                for raw in requests:
                    try:
                        request = pb.ModelInferRequest.FromString(raw)
                    except DecodeError as exc:
                        error = InvalidInputError(_invalid_message(pb.ModelInferRequest, exc))
                        inflight.put((pb.ModelInferRequest(), None, None, error))
                        continue
                    try:
                        loaded, pending = self.core.infer_nowait(
                            request.model_name,
                            request.model_version,
                            _tensors(request),
                            [o.name for o in request.outputs],
                            _parameters(request.parameters),
                        )
                        inflight.put((request, loaded, pending, None))
                    except ServingError as exc:
                        inflight.put((request, None, None, exc))
                    except Exception as exc:
                        log.exception("stream request failed")
                        failure = ModelExecutionError(f"the request failed: {exc}")
                        inflight.put((request, None, None, failure))
            except grpc.RpcError:
                pass  # the client went away; the stream ends
            finally:
                inflight.put(done)

        threading.Thread(target=reader, name="lm-grpc-stream", daemon=True).start()
        while True:
            item = inflight.get()
            if item is done:
                return
            request, loaded, pending, error = item
            if error is None:
                pending.wait()
                try:
                    yield pb.ModelStreamInferResponse(
                        infer_response=_response(loaded, request, outputs_of(pending))
                    )
                    continue
                except ServingError as exc:
                    error = exc
            yield pb.ModelStreamInferResponse(
                error_message=str(error),
                infer_response=pb.ModelInferResponse(model_name=request.model_name, id=request.id),
            )

    def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=bool(self.live()))

    def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=bool(self.live()) and self.core.repository.ready())

    def ModelReady(self, request: Any, context: Any) -> Any:
        try:
            self.core.repository.get(request.name, request.version)
        except ServingError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=server_version(), extensions=list(EXTENSIONS)
        )

    def _guard(self, context: Any, fn: Any) -> Any:
        try:
            return fn()
        except ServingError as exc:
            context.abort(getattr(grpc.StatusCode, exc.grpc_code), str(exc))
            raise

    def ModelMetadata(self, request: Any, context: Any) -> Any:
        def answer() -> Any:
            meta = metadata_json(self.core.repository, request.name, request.version)
            return json_format.ParseDict(meta, pb.ModelMetadataResponse())

        return self._guard(context, answer)

    def ModelConfig(self, request: Any, context: Any) -> Any:
        def answer() -> Any:
            loaded = self.core.repository.get(request.name, request.version)
            return pb.ModelConfigResponse(config=config_proto(loaded))

        return self._guard(context, answer)

    def ModelStatistics(self, request: Any, context: Any) -> Any:
        def answer() -> Any:
            stats = statistics_json(self.core.repository, request.name, request.version)
            return json_format.ParseDict(stats, pb.ModelStatisticsResponse())

        return self._guard(context, answer)

    def RepositoryIndex(self, request: Any, context: Any) -> Any:
        rows = self.core.repository.index()
        if request.ready:
            rows = [r for r in rows if r["state"] == "READY"]
        response = pb.RepositoryIndexResponse()
        for r in rows:
            response.models.add(**r)
        return response

    def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        def answer() -> Any:
            refuse_model_control(self.model_control, "load")
            if any(k == "config" or k.startswith("file:") for k in request.parameters):
                msg = (
                    "loading a model with an uploaded configuration or files is not "
                    "supported; put the model in the repository or the registry"
                )
                raise InvalidInputError(msg)
            entry = self.core.repository.load(request.model_name, force=True)
            if not entry.versions:
                msg = f"failed to load {request.model_name!r}: {entry.reason}"
                raise InvalidInputError(msg)
            return pb.RepositoryModelLoadResponse()

        return self._guard(context, answer)

    def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        def answer() -> Any:
            refuse_model_control(self.model_control, "unload")
            self.core.repository.unload(request.model_name)
            return pb.RepositoryModelUnloadResponse()

        return self._guard(context, answer)


_UNARY = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
    "ModelConfig": (pb.ModelConfigRequest, pb.ModelConfigResponse),
    "ModelStatistics": (pb.ModelStatisticsRequest, pb.ModelStatisticsResponse),
    "RepositoryIndex": (pb.RepositoryIndexRequest, pb.RepositoryIndexResponse),
    "RepositoryModelLoad": (pb.RepositoryModelLoadRequest, pb.RepositoryModelLoadResponse),
    "RepositoryModelUnload": (
        pb.RepositoryModelUnloadRequest,
        pb.RepositoryModelUnloadResponse,
    ),
}


def build_server(
    core: Core,
    address: str,
    *,
    threads: int = 32,
    max_inflight: int = 0,
    max_message: int = DEFAULT_MAX_BODY,
    model_control: str = "none",
    reuse_port: bool = False,
    live: Any = lambda: True,
) -> tuple[grpc.Server, int]:
    """A ready (not yet started) gRPC server bound to ``address``; returns the port.

    Requests over ``max_message`` bytes are refused (RESOURCE_EXHAUSTED) and at most
    ``max_inflight`` calls run at once. The port is shared (SO_REUSEPORT) only with
    ``reuse_port``, which the workers of one ``luminary serve --workers N`` set; otherwise a
    port another server holds is an error, never a silent share of its traffic.
    """
    servicer = Servicer(core, live, model_control)
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    # Requests arrive as bytes and are parsed here, so that bytes that are no valid message
    # get INVALID_ARGUMENT naming the message (grpcio's own deserializer answers INTERNAL).
    for name, (req, resp) in _UNARY.items():
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            _parsing(getattr(servicer, name), req),
            response_serializer=resp.SerializeToString,
        )
    handlers["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(
        servicer.ModelStreamInfer,
        response_serializer=pb.ModelStreamInferResponse.SerializeToString,
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lm-grpc"),
        handlers=[grpc.method_handlers_generic_handler(SERVICE, handlers)],
        options=[
            ("grpc.max_receive_message_length", max_message),
            ("grpc.max_send_message_length", MAX_SEND),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ],
        maximum_concurrent_rpcs=max_inflight or None,
    )
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:  # grpcio ≥ 1.58 raises where older versions return 0
        port = 0
    if port == 0:
        msg = (
            f"cannot listen for gRPC on {address}: the port is in use by another process or "
            "the address is not local; stop the other server or choose another --grpc-port"
        )
        raise InvalidArgumentError(msg)
    return server, port
