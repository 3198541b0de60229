"""The backend interface: one loaded copy (instance) of one model version."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from luminary.errors import LuminaryError
from luminary.serving._types import TensorConfig


class LoadError(LuminaryError):
    """A model file could not be loaded; the message gives the file and the reason."""


@dataclass(frozen=True)
class BackendOptions:
    """How to run an instance: threads (so a shared node is not oversubscribed) and device."""

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    kind: str = "KIND_AUTO"  # KIND_AUTO, KIND_CPU or KIND_GPU, as in the model configuration
    gpus: tuple[int, ...] = ()
    parameters: dict[str, str] = field(default_factory=dict)


class Backend(abc.ABC):
    """One instance of a model, created by :meth:`load`.

    The batcher calls :meth:`run` from one thread per instance, never concurrently on the same
    instance, and always off the server's event loop. ``run`` receives C-contiguous arrays with
    the batch dimension first (when the model batches) and returns the requested outputs in
    order. Errors from the runtime are raised as they come; the batcher fails the batch.
    """

    name: str = ""
    platform: str = ""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: Path, options: BackendOptions) -> Backend:
        """Load ``path``; raise :class:`LoadError` naming the file and the reason."""

    @property
    @abc.abstractmethod
    def inputs(self) -> tuple[TensorConfig, ...]:
        """Inputs as the file declares them: full shapes, ``-1`` for free dimensions."""

    @property
    @abc.abstractmethod
    def outputs(self) -> tuple[TensorConfig, ...]:
        """Outputs as the file declares them."""

    @property
    def device(self) -> str:
        """Where the instance runs, e.g. ``"cpu"`` or ``"cuda:0"``."""
        return "cpu"

    @abc.abstractmethod
    def run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        """Run one batch."""

    def close(self) -> None:  # noqa: B027 - most backends free everything on collection
        """Release the instance's resources."""
