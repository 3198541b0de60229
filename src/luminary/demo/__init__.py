"""The `luminary demo` pieces: synthetic jets and a small NumPy DeepSets jet tagger, and the job
that tells the whole story — data, training runs, registry, serving, energy and cost.

- ``_job.py`` — :func:`run_demo` and its :class:`DemoConfig`.
- The tagger's pieces, public for benchmarks and examples: :func:`make_jets`,
  :func:`train_test_split`, :class:`DeepSets`, :func:`train` (and ``CLASSES``, ``FEATURES``).
- ``_jets.py`` (synthetic jets), ``_rootio.py`` (written as ROOT files), ``_deepsets.py`` (the
  model), ``_onnx.py`` (its ONNX export), ``_serve.py`` (served and queried with tritonclient).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from luminary.demo._deepsets import DeepSets, train
    from luminary.demo._jets import CLASSES, FEATURES, make_jets, train_test_split
    from luminary.demo._job import DemoConfig, run_demo

__all__ = [
    "CLASSES",
    "FEATURES",
    "DeepSets",
    "DemoConfig",
    "make_jets",
    "run_demo",
    "train",
    "train_test_split",
]

_HOME = {
    "CLASSES": "_jets",
    "FEATURES": "_jets",
    "make_jets": "_jets",
    "train_test_split": "_jets",
    "DeepSets": "_deepsets",
    "train": "_deepsets",
    "DemoConfig": "_job",
    "run_demo": "_job",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:  # NumPy and the extras load on first use, not with the CLI
        import importlib

        return getattr(importlib.import_module(f"luminary.demo.{_HOME[name]}"), name)
    raise AttributeError(name)
