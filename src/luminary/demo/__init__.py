"""The `luminary demo` pieces: synthetic jets and a small NumPy DeepSets jet tagger, and the job
that tells the whole story — data, training runs, registry, serving, energy and cost.

- ``_job.py`` — :func:`run_demo` and its :class:`DemoConfig`.
- ``_jets.py`` (synthetic jets), ``_rootio.py`` (written as ROOT files), ``_deepsets.py`` (the
  model), ``_onnx.py`` (its ONNX export), ``_serve.py`` (served and queried with tritonclient).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from luminary.demo._job import DemoConfig, run_demo

__all__ = ["DemoConfig", "run_demo"]


def __getattr__(name: str) -> Any:
    if name in __all__:  # NumPy and the extras load with the job, not with the CLI
        from luminary.demo import _job

        return getattr(_job, name)
    raise AttributeError(name)
