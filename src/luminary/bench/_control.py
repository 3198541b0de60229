"""A small client for the protocol's control calls, over HTTP or gRPC: liveness, model
metadata and configuration, statistics. The load generator asks these before and after a run.

Every transport error is mapped here, at one boundary: a server that does not answer is a
:class:`~luminary.errors.BackendUnavailableError` naming the address and how to start one; a
model the server does not serve is a :class:`~luminary.errors.NotFoundError` carrying the
server's own message (which suggests the nearest name). Not thread-safe: one caller at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from luminary.errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    LuminaryError,
    NotFoundError,
)
from luminary.serving import TensorConfig

__all__ = ["DEFAULT_PORTS", "PROTOCOLS", "Control", "Endpoint", "ModelInfo", "parse_url"]

PROTOCOLS = ("grpc", "http")
DEFAULT_PORTS = {"http": 8000, "grpc": 8001}  # Triton's
TIMEOUT = 10.0


@dataclass(frozen=True)
class Endpoint:
    """Where a server listens, and which protocol to speak there."""

    host: str
    port: int
    protocol: str

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}://{self.address}"


def parse_url(url: str | None, protocol: str) -> Endpoint:
    """``HOST:PORT``, ``HOST``, ``[IPv6]:PORT`` or with a scheme; None: localhost."""
    if protocol not in PROTOCOLS:
        msg = f"protocol {protocol!r} is not known; use {' or '.join(PROTOCOLS)}"
        raise InvalidArgumentError(msg)
    text = (url or "").strip()
    for scheme in ("http://", "https://", "grpc://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    text = text.rstrip("/")
    host, port_text = text or "localhost", ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            msg = f"--url {url!r}: an IPv6 address needs its closing ']' ([::1]:8001)"
            raise InvalidArgumentError(msg)
        host, port_text = text[1:end], text[end + 1 :].removeprefix(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not port_text:
        return Endpoint(host or "localhost", DEFAULT_PORTS[protocol], protocol)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        msg = f"--url {url!r}: the port {port_text!r} is not a number from 1 to 65535"
        raise InvalidArgumentError(msg)
    return Endpoint(host or "localhost", int(port_text), protocol)


@dataclass(frozen=True)
class ModelInfo:
    """A served model's inputs, dims per event (without the batch dim when it batches)."""

    name: str
    max_batch_size: int
    inputs: tuple[TensorConfig, ...]

    @property
    def batched(self) -> bool:
        return self.max_batch_size > 0


@dataclass(frozen=True)
class StatsSnapshot:
    """A model's counters at one moment, summed over its versions."""

    inference_count: int = 0
    execution_count: int = 0
    batches: dict[int, int] = field(default_factory=dict)  # batch size → executions

    def since(self, before: StatsSnapshot) -> tuple[float | None, dict[int, int]]:
        """Mean executed batch (events) and executions by batch size since ``before``."""
        executions = self.execution_count - before.execution_count
        events = self.inference_count - before.inference_count
        sizes = {
            size: count - before.batches.get(size, 0)
            for size, count in sorted(self.batches.items())
            if count > before.batches.get(size, 0)
        }
        return (events / executions if executions > 0 else None), sizes


def _snapshot(stats: dict[str, Any]) -> StatsSnapshot:
    inferences = executions = 0
    batches: dict[int, int] = {}
    for version in stats.get("model_stats", []):
        inferences += int(version.get("inference_count", 0))
        executions += int(version.get("execution_count", 0))
        for b in version.get("batch_stats", []):
            size = int(b.get("batch_size", 0))
            count = int(b.get("compute_infer", {}).get("count", 0))
            batches[size] = batches.get(size, 0) + count
    return StatsSnapshot(inferences, executions, batches)


class Control:
    """Control calls to one server; use as a context manager (closes its connection)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._client: Any = None
        self._checked = False

    def __enter__(self) -> Control:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- errors ---------------------------------------------------------------------------

    def _unreachable(self, reason: str) -> BackendUnavailableError:
        e = self.endpoint
        other = "http" if e.protocol == "grpc" else "grpc"
        return BackendUnavailableError(
            f"cannot reach the inference server at {e} ({reason}); start one with "
            "`luminary serve MODEL` or `luminary serve --repository DIR`, or point --url at "
            f"one (HOST:PORT; {e.protocol} listens on {DEFAULT_PORTS[e.protocol]} by "
            f"default, {other} on {DEFAULT_PORTS[other]})"
        )

    def _refused(self, model: str, status: str, detail: str) -> LuminaryError:
        where = f"the inference server at {self.endpoint}"
        if status in ("NOT_FOUND", "404"):
            detail = detail or f"no model {model!r}"
            return NotFoundError(
                f"{where}: {detail}; check the name, or serve the model there "
                "(luminary serve NAME@ALIAS, or --repository DIR)"
            )
        if status in ("UNAVAILABLE", "503"):
            return BackendUnavailableError(f"{where} cannot serve {model!r} now: {detail}")
        return LuminaryError(f"{where} answered {status} for {model!r}: {detail}")

    # -- the calls ------------------------------------------------------------------------

    def model_info(self, model: str, version: str = "") -> ModelInfo:
        """The model's inputs and max_batch_size (metadata and configuration calls)."""
        if self.endpoint.protocol == "grpc":
            meta = self._grpc("ModelMetadata", model, {"name": model, "version": version})
            config = self._grpc("ModelConfig", model, {"name": model, "version": version})
            config = config.get("config", {})
        else:
            path = f"/v2/models/{quote(model, safe='')}"
            if version:
                path += f"/versions/{quote(version, safe='')}"
            meta = self._http(path, model)
            config = self._http(path + "/config", model)
        max_batch = int(config.get("max_batch_size", 0))
        inputs = []
        for t in meta.get("inputs", []):
            dims = tuple(int(d) for d in t.get("shape", []))
            if max_batch > 0:
                dims = dims[1:]
            inputs.append(TensorConfig(str(t["name"]), str(t["datatype"]), dims))
        if not inputs:
            msg = f"model {model!r} on {self.endpoint} declares no inputs; nothing to send"
            raise InvalidArgumentError(msg)
        return ModelInfo(str(meta.get("name", model)), max_batch, tuple(inputs))

    def stats(self, model: str, version: str = "") -> StatsSnapshot | None:
        """The model's statistics now; None when the server does not give them."""
        try:
            if self.endpoint.protocol == "grpc":
                raw = self._grpc("ModelStatistics", model, {"name": model, "version": version})
            else:
                path = f"/v2/models/{quote(model, safe='')}"
                if version:
                    path += f"/versions/{quote(version, safe='')}"
                raw = self._http(path + "/stats", model)
        except LuminaryError:
            return None
        return _snapshot(raw)

    # -- HTTP -----------------------------------------------------------------------------

    def _http(self, path: str, model: str) -> dict[str, Any]:
        import httpx

        if self._client is None:
            self._client = httpx.Client(
                base_url=f"http://{self.endpoint.address}", timeout=TIMEOUT, trust_env=False
            )
        try:
            response = self._client.get(path)
        except httpx.ConnectError as exc:
            raise self._unreachable(_first_line(exc) or "connection refused") from None
        except httpx.HTTPError as exc:
            kind = self.endpoint.protocol
            reason = f"{type(exc).__name__}: {_first_line(exc)}; is it the {kind} port?"
            raise self._unreachable(reason) from None
        if response.status_code != 200:
            try:
                detail = str(response.json().get("error", ""))
            except ValueError:
                detail = response.text[:200]
            raise self._refused(model, str(response.status_code), detail)
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            msg = f"{self.endpoint} answered {path} with something other than JSON"
            raise BackendUnavailableError(msg) from None
        return body

    # -- gRPC -----------------------------------------------------------------------------

    def _grpc(self, method: str, model: str, fields: dict[str, Any]) -> dict[str, Any]:
        import grpc
        from google.protobuf import json_format

        if self._client is None:
            self._client = grpc.insecure_channel(self.endpoint.address)
        if not self._checked:
            try:
                self._call("ServerLive", {})
            except grpc.RpcError as exc:
                reason = _first_line(exc.details() or exc.code().name)
                if exc.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    reason = f"{exc.code().name}: {reason}; is it the gRPC port?"
                raise self._unreachable(reason) from None
            self._checked = True
        try:
            reply = self._call(method, fields)
        except grpc.RpcError as exc:
            raise self._refused(model, exc.code().name, exc.details() or "") from None
        result: dict[str, Any] = json_format.MessageToDict(reply, preserving_proto_field_name=True)
        return result

    def _call(self, method: str, fields: dict[str, Any]) -> Any:
        from luminary.serving import grpc_service_pb2 as pb

        request = getattr(pb, f"{method}Request")(**fields)
        call = self._client.unary_unary(
            f"/inference.GRPCInferenceService/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=getattr(pb, f"{method}Response").FromString,
        )
        return call(request, timeout=TIMEOUT)


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else ""
