"""Model configuration: ``config.pbtxt`` in, :class:`ModelSpec` out, and back to the protocol.

A ``config.pbtxt`` is parsed with protobuf's text format into the protocol's ``ModelConfig``
message (fields Luminary does not use are skipped, not refused), then merged
with what the model file declares: names, data types and shapes come from the file, the
configuration may narrow them and sets batching, instances and threads. Without a
configuration, a model whose inputs and outputs all have a free first dimension batches up
to :data:`DEFAULT_MAX_BATCH_SIZE` events with the dynamic batcher on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf import text_format

from luminary.errors import InvalidArgumentError
from luminary.serving._proto import model_config_pb2 as mc
from luminary.serving._types import (
    BatchingConfig,
    ModelSpec,
    QueuePolicy,
    TensorConfig,
    config_type,
    protocol_type,
)

log = logging.getLogger("luminary.serving")

DEFAULT_MAX_BATCH_SIZE = 1024

# ``model_warmup [ {...} ]``: the colon before a list of messages is optional in the text
# format (Triton's examples omit it), but protobuf's skipper of unknown fields requires it.
# Strings and comments are matched first so that nothing inside them changes.
_LIST_WITHOUT_COLON = re.compile(
    r"(\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|#[^\n]*)|\b([A-Za-z_]\w*)(\s*)\["
)


def _colon_before_lists(text: str) -> str:
    return _LIST_WITHOUT_COLON.sub(
        lambda m: m.group(0) if m.group(1) is not None else f"{m.group(2)}:{m.group(3)}[", text
    )


def read_config(path: Path) -> Any:
    """Parse a ``config.pbtxt``; a syntax error names the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read {path}: {exc}"
        raise InvalidArgumentError(msg) from exc
    config = mc.ModelConfig()
    try:
        text_format.Parse(_colon_before_lists(text), config, allow_unknown_field=True)
    except text_format.ParseError as exc:
        msg = f"{path}: {exc}"
        raise InvalidArgumentError(msg) from exc
    return config


def _merge_tensors(
    declared: Sequence[TensorConfig], configured: Sequence[Any], batched: bool, where: str
) -> tuple[TensorConfig, ...]:
    by_name = {t.name: t for t in declared}
    if not configured:
        return tuple(
            TensorConfig(t.name, t.datatype, t.dims[1:] if batched else t.dims) for t in declared
        )
    result = []
    for c in configured:
        spec = by_name.get(c.name)
        if spec is None:
            msg = (
                f"{where} {c.name!r} in config.pbtxt is not in the model file; the file has "
                f"{', '.join(sorted(by_name)) or 'none'}"
            )
            raise InvalidArgumentError(msg)
        datatype = spec.datatype
        if c.data_type:
            datatype = protocol_type(mc.DataType.Name(c.data_type))
            if datatype != spec.datatype:
                msg = (
                    f"{where} {c.name!r}: config.pbtxt says {datatype}, the model file "
                    f"{spec.datatype}"
                )
                raise InvalidArgumentError(msg)
        dims = tuple(c.dims) if c.dims else (spec.dims[1:] if batched else spec.dims)
        result.append(TensorConfig(c.name, datatype, dims))
    return tuple(result)


def _batching(config: Any | None, batched: bool) -> BatchingConfig:
    if config is None or not config.HasField("dynamic_batching"):
        # Like Triton's auto-completed configuration: batching on, no added delay.
        return BatchingConfig(enabled=batched)
    db = config.dynamic_batching
    q = db.default_queue_policy
    return BatchingConfig(
        enabled=batched,
        max_queue_delay_us=int(db.max_queue_delay_microseconds),
        preferred_batch_sizes=tuple(int(s) for s in db.preferred_batch_size),
        preserve_ordering=True,
        priority_levels=max(1, int(db.priority_levels)),
        default_priority=max(1, int(db.default_priority_level or 1)),
        queue=QueuePolicy(
            timeout_us=int(q.default_timeout_microseconds),
            allow_timeout_override=bool(q.allow_timeout_override) or not q.ByteSize(),
            max_queue_size=int(q.max_queue_size),
        ),
    )


def build_spec(
    name: str,
    version: str,
    backend: str,
    platform: str,
    inputs: Sequence[TensorConfig],
    outputs: Sequence[TensorConfig],
    config: Any | None = None,
    *,
    instances: int = 1,
    threads: int = 1,
) -> ModelSpec:
    """Merge what the file declares with an optional ``ModelConfig`` message."""
    first_free = all(t.dims and t.dims[0] == -1 for t in [*inputs, *outputs])
    if config is not None and config.max_batch_size:
        if not first_free:
            msg = (
                f"model {name!r}: config.pbtxt sets max_batch_size {config.max_batch_size}, "
                "but the file's inputs and outputs do not all have a free first (batch) "
                "dimension; set max_batch_size: 0"
            )
            raise InvalidArgumentError(msg)
        max_batch = int(config.max_batch_size)
    elif config is not None and (config.input or config.output):
        max_batch = 0  # tensors configured without max_batch_size: full shapes, no batching
    else:
        max_batch = DEFAULT_MAX_BATCH_SIZE if first_free else 0
    if max_batch < 0:
        msg = f"model {name!r}: max_batch_size must be 0 or more, not {max_batch}"
        raise InvalidArgumentError(msg)
    batched = max_batch > 0
    ins = _merge_tensors(inputs, config.input if config is not None else (), batched, "input")
    outs = _merge_tensors(outputs, config.output if config is not None else (), batched, "output")
    count, kind = instances, "KIND_AUTO"
    if config is not None and config.instance_group:
        group = config.instance_group[0]
        count = max(1, int(sum(g.count or 1 for g in config.instance_group)))
        kind = mc.ModelInstanceGroup.Kind.Name(group.kind)
    intra = threads
    if config is not None and "intra_op_thread_count" in config.parameters:
        intra = _int_parameter(config, "intra_op_thread_count", name)
    inter = 1
    if config is not None and "inter_op_thread_count" in config.parameters:
        inter = _int_parameter(config, "inter_op_thread_count", name)
    return ModelSpec(
        name=name,
        version=version,
        platform=platform,
        backend=backend,
        max_batch_size=max_batch,
        inputs=ins,
        outputs=outs,
        batching=_batching(config, batched),
        instances=count,
        intra_op_threads=intra,
        inter_op_threads=inter,
        kind=kind,
    )


def _int_parameter(config: Any, key: str, name: str) -> int:
    raw = config.parameters[key].string_value
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"model {name!r}: parameter {key} must be a whole number ≥ 1, not {raw!r}"
        raise InvalidArgumentError(msg)
    return value


def to_proto(spec: ModelSpec, extra: dict[str, str] | None = None) -> Any:
    """The ``ModelConfig`` message the protocol's model-config endpoints answer."""
    config = mc.ModelConfig(
        name=spec.name,
        platform=spec.platform,
        backend=spec.backend,
        max_batch_size=spec.max_batch_size,
    )
    for t in spec.inputs:
        config.input.add(name=t.name, data_type=mc.DataType.Value(config_type(t.datatype)))
        config.input[-1].dims.extend(t.dims)
    for t in spec.outputs:
        config.output.add(name=t.name, data_type=mc.DataType.Value(config_type(t.datatype)))
        config.output[-1].dims.extend(t.dims)
    group = config.instance_group.add(
        name=spec.name, count=spec.instances, kind=mc.ModelInstanceGroup.Kind.Value(spec.kind)
    )
    del group
    b = spec.batching
    if spec.batched and b.enabled:
        db = config.dynamic_batching
        db.max_queue_delay_microseconds = b.max_queue_delay_us
        db.preferred_batch_size.extend(b.preferred_batch_sizes)
        db.preserve_ordering = b.preserve_ordering
        db.priority_levels = b.priority_levels
        db.default_priority_level = b.default_priority
        db.default_queue_policy.default_timeout_microseconds = b.queue.timeout_us
        db.default_queue_policy.allow_timeout_override = b.queue.allow_timeout_override
        db.default_queue_policy.max_queue_size = b.queue.max_queue_size
    config.parameters["intra_op_thread_count"].string_value = str(spec.intra_op_threads)
    config.parameters["inter_op_thread_count"].string_value = str(spec.inter_op_threads)
    for key, value in (extra or {}).items():
        config.parameters[key].string_value = value
    return config
