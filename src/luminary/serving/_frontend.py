"""Answers both front ends share: server and model metadata, configuration, statistics."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from luminary.errors import InvalidArgumentError
from luminary.serving._config import to_proto
from luminary.serving._errors import UnavailableError
from luminary.serving._repository import LoadedModel, ModelRepository

SERVER_NAME = "luminary"
DEFAULT_MAX_BODY = 64 << 20  # bytes: a request (HTTP body, inflated body, gRPC message)
MODEL_CONTROL = ("none", "explicit")  # Triton's modes Luminary offers; none is the default
EXTENSIONS = (
    "binary_tensor_data",
    "model_repository",
    "statistics",
    "schedule_policy",
)


def server_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("luminary")
    except PackageNotFoundError:  # running from a source tree
        return "0"


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": server_version(), "extensions": list(EXTENSIONS)}


def metadata_json(repo: ModelRepository, name: str, version: str) -> dict[str, Any]:
    loaded = repo.get(name, version)
    spec = loaded.spec
    versions = sorted(repo.entry(name).versions, key=int) if not version else [spec.version]
    return {
        "name": spec.name,
        "versions": versions,
        "platform": spec.platform,
        "inputs": [
            {"name": t.name, "datatype": t.datatype, "shape": t.shape(spec.batched)}
            for t in spec.inputs
        ],
        "outputs": [
            {"name": t.name, "datatype": t.datatype, "shape": t.shape(spec.batched)}
            for t in spec.outputs
        ],
    }


def config_proto(loaded: LoadedModel) -> Any:
    return to_proto(loaded.spec, {"luminary_source": loaded.origin, "device": loaded.device})


def _ints(value: Any) -> Any:
    """protobuf's JSON writes 64-bit integers as strings; the protocol's JSON has numbers."""
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


def config_json(loaded: LoadedModel) -> dict[str, Any]:
    raw = json_format.MessageToDict(config_proto(loaded), preserving_proto_field_name=True)
    params = raw.pop("parameters", {})
    out: dict[str, Any] = _ints(raw)
    out["parameters"] = params  # string values stay strings
    return out


def statistics_json(repo: ModelRepository, name: str, version: str) -> dict[str, Any]:
    """``{"model_stats": [...]}`` for one model (``name``) or all (``""``)."""
    stats = []
    names = [name] if name else repo.names()
    for n in names:
        entry = repo.entry(n)
        if version:
            loaded = repo.get(n, version)
            stats.append(loaded.stats.to_dict(n, loaded.spec.version))
            continue
        for v, loaded in sorted(entry.versions.items(), key=lambda kv: int(kv[0])):
            stats.append(loaded.stats.to_dict(n, v))
    return {"model_stats": stats}


def check_model_control(mode: str) -> str:
    if mode not in MODEL_CONTROL:
        msg = f"model control {mode!r} is not known; use {' or '.join(MODEL_CONTROL)}"
        raise InvalidArgumentError(msg)
    return mode


def refuse_model_control(mode: str, action: str) -> None:
    """Loading and unloading are refused unless the server runs with explicit model control
    (Triton's rule: in mode NONE the repository is fixed at start; UNAVAILABLE)."""
    if mode != "explicit":
        msg = (
            f"explicit model {action} is not allowed: this server runs with model control "
            f"{mode!r}; start it with --model-control explicit to load and unload models"
        )
        raise UnavailableError(msg)
