"""Protocol-independent inference: tensors checked against the model, queued, answered.

Both front ends decode their wire format into :class:`InputTensor` values (a NumPy view over
the request's bytes where the wire carries raw bytes), then call :meth:`Core.infer` (a
synchronous handler thread, which may run the batch itself), :meth:`Core.infer_async` (an event
loop) or :meth:`Core.infer_nowait` (a stream that queues requests before their answers come
back). Each is :meth:`Core.prepare` (the checks) then :meth:`Core.submit` (the queue). The
checks name the tensor, what was sent and what the model expects.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from luminary.serving._batcher import Pending
from luminary.serving._errors import (
    InvalidInputError,
    RetiredError,
    ServingError,
    UnavailableError,
)
from luminary.serving._repository import LoadedModel, ModelRepository
from luminary.serving._types import DTYPES, ModelSpec

MAX_ELEMENTS = 1 << 31  # per tensor: a declared shape beyond this is refused before any work


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Any  # bytes-like (raw), a list (JSON ``data``) or an ndarray


class Request(Protocol):
    """A request as a front end decoded it: what :meth:`Core.infer_async` reads."""

    @property
    def model(self) -> str: ...
    @property
    def version(self) -> str: ...  # "": the version now serving
    @property
    def inputs(self) -> Sequence[InputTensor]: ...
    @property
    def outputs(self) -> Sequence[str]: ...  # empty: all of the model's outputs
    @property
    def parameters(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Request)


def element_count(name: str, shape: Sequence[int]) -> int:
    """Elements in ``shape``; refuses negative dims and absurd sizes before allocating."""
    for d in shape:
        if d < 0:
            msg = f"input {name!r}: shape {list(shape)} has a negative dimension"
            raise InvalidInputError(msg)
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        msg = f"input {name!r}: shape {list(shape)} declares {count} elements, over the limit"
        raise InvalidInputError(msg)
    return count


def decode(tensor: InputTensor) -> np.ndarray:
    """The tensor as an array, without copying raw bytes."""
    dtype = DTYPES.get(tensor.datatype)
    if dtype is None:
        msg = (
            f"input {tensor.name!r}: datatype {tensor.datatype!r} is not supported; use one "
            f"of {', '.join(DTYPES)}"
        )
        raise InvalidInputError(msg)
    count = element_count(tensor.name, tensor.shape)
    data = tensor.data
    if isinstance(data, np.ndarray):
        array = data
    elif isinstance(data, (bytes, bytearray, memoryview)):
        expected = count * dtype.itemsize
        if len(data) != expected:
            msg = (
                f"input {tensor.name!r}: {len(data)} bytes of data, but shape "
                f"{list(tensor.shape)} of {tensor.datatype} needs {expected}"
            )
            raise InvalidInputError(msg)
        return np.frombuffer(data, dtype=dtype).reshape(tensor.shape)
    else:
        array = _from_json(tensor, dtype)
    if array.size != count:
        msg = (
            f"input {tensor.name!r}: {array.size} values of data, but shape "
            f"{list(tensor.shape)} needs {count}"
        )
        raise InvalidInputError(msg)
    return np.ascontiguousarray(array.reshape(tensor.shape))


_JSON_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}  # target kind → kinds accepted


def _from_json(tensor: InputTensor, dtype: np.dtype[Any]) -> np.ndarray:
    """JSON ``data`` as an array of ``dtype``, refusing nulls, strings, fractions for integer
    types and values out of the type's range (never NaN, never a silent wrap-around)."""
    try:
        inferred = np.asarray(tensor.data)
    except (TypeError, ValueError) as exc:
        msg = f"input {tensor.name!r}: data is not a list of {tensor.datatype} values ({exc})"
        raise InvalidInputError(msg) from None
    if inferred.size == 0:
        return inferred.astype(dtype)
    accepted = _JSON_KINDS[dtype.kind]
    if inferred.dtype.kind not in accepted:
        what = {
            "O": "null, nested or out-of-range values",
            "U": "strings",
            "S": "strings",
            "b": "booleans",
            "f": "numbers with a fraction",
        }.get(inferred.dtype.kind, str(inferred.dtype))
        want = {"b": "true or false", "iu": "whole numbers", "iuf": "numbers"}[accepted]
        msg = (
            f"input {tensor.name!r}: data is not a list of {tensor.datatype} values: it holds "
            f"{what}; {tensor.datatype} data must be {want} (null is no value; send each one)"
        )
        raise InvalidInputError(msg)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = inferred.min(), inferred.max()
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            msg = (
                f"input {tensor.name!r}: value {bad} is out of the range of "
                f"{tensor.datatype} ({info.min} to {info.max})"
            )
            raise InvalidInputError(msg)
        return inferred.astype(dtype)
    with np.errstate(over="ignore"):
        array = inferred.astype(dtype)
    if dtype.kind == "f" and not np.isfinite(array).all():
        msg = (
            f"input {tensor.name!r}: a value is out of the range of {tensor.datatype} "
            f"(largest {float(np.finfo(dtype).max):g})"
        )
        raise InvalidInputError(msg)
    return array


def check(spec: ModelSpec, tensors: Sequence[InputTensor]) -> tuple[dict[str, np.ndarray], int]:
    """Validate the request's inputs against the model; return feeds and events in it."""
    feeds: dict[str, np.ndarray] = {}
    events = -1
    for t in tensors:
        want = spec.input(t.name)
        if want is None:
            expected = ", ".join(repr(s.name) for s in spec.inputs)
            msg = f"model {spec.name!r} has no input {t.name!r}; its inputs are {expected}"
            raise InvalidInputError(msg)
        if t.name in feeds:
            msg = f"input {t.name!r} is given twice"
            raise InvalidInputError(msg)
        if t.datatype != want.datatype:
            msg = (
                f"input {t.name!r}: datatype {t.datatype} sent, model {spec.name!r} expects "
                f"{want.datatype}"
            )
            raise InvalidInputError(msg)
        expected_shape = want.shape(spec.batched)
        ok = len(t.shape) == len(expected_shape) and all(
            e in (-1, s) for e, s in zip(expected_shape, t.shape, strict=True)
        )
        if not ok:
            msg = (
                f"input {t.name!r}: shape {list(t.shape)} sent, model {spec.name!r} expects "
                f"{expected_shape} (-1: any size)"
            )
            raise InvalidInputError(msg)
        if spec.batched:
            n = t.shape[0]
            if n < 1 or n > spec.max_batch_size:
                msg = (
                    f"input {t.name!r}: batch of {n} events; model {spec.name!r} takes 1 to "
                    f"{spec.max_batch_size} per request"
                )
                raise InvalidInputError(msg)
            if events not in (-1, n):
                msg = f"inputs disagree on the batch size ({events} and {n} events)"
                raise InvalidInputError(msg)
            events = n
        feeds[t.name] = decode(t)
    missing = [s.name for s in spec.inputs if s.name not in feeds]
    if missing:
        msg = f"model {spec.name!r} needs input(s) {', '.join(map(repr, missing))}"
        raise InvalidInputError(msg)
    return feeds, max(events, 1)


def check_outputs(spec: ModelSpec, names: Sequence[str]) -> None:
    for name in names:
        if spec.output(name) is None:
            expected = ", ".join(repr(s.name) for s in spec.outputs)
            msg = f"model {spec.name!r} has no output {name!r}; its outputs are {expected}"
            raise InvalidInputError(msg)


SEQUENCE_CONTROLS = ("sequence_id", "sequence_start", "sequence_end")


def check_not_sequence(spec: ModelSpec, parameters: dict[str, Any]) -> None:
    """Refuse sequence controls: no model here has a sequence batcher, so a request that
    carries them would be answered as if stateless, which is wrong for a stateful model."""
    given = [k for k in SEQUENCE_CONTROLS if parameters.get(k) not in (None, 0, "", False)]
    if given:
        msg = (
            f"model {spec.name!r} has no sequence batching; the request sets "
            f"{', '.join(f'{k}={parameters[k]!r}' for k in given)}. Send it without sequence "
            "controls (this server serves stateless models only)"
        )
        raise InvalidInputError(msg)


def _int_parameter(parameters: dict[str, Any], key: str) -> int:
    value = parameters.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"request parameter {key!r} must be a whole number ≥ 0, not {value!r}"
        raise InvalidInputError(msg)
    return value


def outputs_of(pending: Pending) -> dict[str, np.ndarray]:
    """The outputs of a completed request, or its error raised."""
    if pending.error is not None:
        raise pending.error
    result = pending.result
    assert result is not None
    return result


class Core:
    """What both front ends call. Thread-safe.

    The ``infer`` methods return the version that answered (a request queued while an alias
    moved is answered by the version now serving) and raise :class:`ServingError`.
    """

    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    def prepare(
        self,
        model: str,
        version: str,
        tensors: Sequence[InputTensor],
        outputs: Sequence[str],
        parameters: dict[str, Any],
        loop: Any = None,
    ) -> tuple[LoadedModel, Pending]:
        """Validate a request and build its :class:`Pending` (not yet queued)."""
        loaded = self.repository.get(model, version)
        spec = loaded.spec
        try:
            check_not_sequence(spec, parameters)
            feeds, events = check(spec, tensors)
            check_outputs(spec, outputs)
            priority = _int_parameter(parameters, "priority")
            if priority > spec.batching.priority_levels:
                msg = (
                    f"priority {priority} is out of range; model {spec.name!r} has levels 1 "
                    f"to {spec.batching.priority_levels} (0: default)"
                )
                raise InvalidInputError(msg)
            timeout = _int_parameter(parameters, "timeout")
        except ServingError:
            loaded.stats.failed()
            raise
        policy = spec.batching.queue
        if not timeout or not policy.allow_timeout_override:
            timeout = policy.timeout_us
        pending = Pending(feeds, events, priority=priority, timeout_us=timeout, loop=loop)
        return loaded, pending

    def submit(self, loaded: LoadedModel, pending: Pending, *, wait: bool = False) -> LoadedModel:
        """Queue ``pending``; if its version was just swapped out, on the version now serving.

        With ``wait`` (synchronous callers), also wait for the answer; the calling thread may
        run the batch itself (:meth:`Batcher.run`).
        """
        for _ in range(3):
            try:
                if wait:
                    loaded.batcher.run(pending)
                else:
                    loaded.batcher.submit(pending)
                return loaded
            except RetiredError:
                old = loaded.spec
                loaded = self.repository.get(old.name, "")
                new = loaded.spec
                if (new.inputs, new.outputs, new.max_batch_size) != (
                    old.inputs,
                    old.outputs,
                    old.max_batch_size,
                ):
                    msg = (
                        f"model {old.name!r} version {old.version} was replaced by version "
                        f"{new.version}, whose inputs or outputs differ; send the request again"
                    )
                    raise UnavailableError(msg) from None
            except ServingError:
                loaded.stats.failed()
                raise
        msg = f"model {loaded.spec.name!r} is being swapped; retry"
        raise UnavailableError(msg)

    def infer(
        self,
        model: str,
        version: str,
        tensors: Sequence[InputTensor],
        outputs: Sequence[str],
        parameters: dict[str, Any],
    ) -> tuple[LoadedModel, dict[str, np.ndarray]]:
        """Answer a request on the calling thread (a gRPC handler): check, queue, wait.

        When an instance is idle, the calling thread runs the batch itself
        (:meth:`Batcher.run`) instead of handing it to a worker.
        """
        loaded, pending = self.prepare(model, version, tensors, outputs, parameters)
        loaded = self.submit(loaded, pending, wait=True)
        return loaded, outputs_of(pending)

    def infer_nowait(
        self,
        model: str,
        version: str,
        tensors: Sequence[InputTensor],
        outputs: Sequence[str],
        parameters: dict[str, Any],
    ) -> tuple[LoadedModel, Pending]:
        """Check and queue a request without waiting for it (a stream's reader thread); the
        caller waits with :meth:`Pending.wait` and reads the answer with :func:`outputs_of`."""
        loaded, pending = self.prepare(model, version, tensors, outputs, parameters)
        return self.submit(loaded, pending), pending

    async def infer_async(
        self, decode: Callable[[], R], *, offload: bool = False
    ) -> tuple[R, LoadedModel, dict[str, np.ndarray]]:
        """Answer a request on the running event loop: ``decode`` gives it, then it is
        checked, queued and awaited.

        With ``offload``, ``decode`` and the checks run together on a worker thread (one hand-
        over), so that a large body's parsing and conversion do not hold up the loop's other
        requests. Returns the decoded request with the answer.
        """
        loop = asyncio.get_running_loop()
        if offload:
            request, loaded, pending = await asyncio.to_thread(self._decoded, decode, loop)
        else:
            request, loaded, pending = self._decoded(decode, loop)
        loaded = self.submit(loaded, pending)
        assert pending.future is not None
        await pending.future
        return request, loaded, outputs_of(pending)

    def _decoded(
        self, decode: Callable[[], R], loop: asyncio.AbstractEventLoop
    ) -> tuple[R, LoadedModel, Pending]:
        request = decode()
        loaded, pending = self.prepare(
            request.model,
            request.version,
            request.inputs,
            request.outputs,
            request.parameters,
            loop=loop,
        )
        return request, loaded, pending
