"""Model registry: models, immutable versions, aliases with history, signatures, lineage.

:func:`inspect_model` reads a model file's format and signature without executing it (and
refuses code-executing files unless the caller opts in); the server runs it on every file it
is asked to register.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["FORMATS", "ModelInfo", "PickleNotAllowedError", "TensorSpec", "inspect_model"]

if TYPE_CHECKING:
    from luminary.registry._formats import (
        FORMATS,
        ModelInfo,
        PickleNotAllowedError,
        TensorSpec,
        inspect_model,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:  # lazily: importing the registry's models stays cheap
        from luminary.registry import _formats

        return getattr(_formats, name)
    raise AttributeError(name)
