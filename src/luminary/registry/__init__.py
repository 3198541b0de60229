"""Model registry: models, immutable versions, aliases with history, signatures, lineage.

- SDK: :func:`register_model`, :func:`get_model`, aliases (``_api.py``).
- Values: :mod:`luminary.registry.models` (``Model``, ``ModelVersion``, ``AliasMove``,
  ``Event``; ``ModelRef`` and :func:`parse_ref` are :mod:`luminary.names`').
- File formats: :func:`inspect_model` reads a model file's format and signature without
  executing it (and refuses code-executing files unless the caller opts in); the server runs it
  on every file it is asked to register (``_formats``).
- Storage: :class:`RegistryStore`, the registry's part of the Store interface (``_base.py``),
  and :class:`SqlRegistry`, its SQL (``_sql.py``).

Everything loads on first use: importing the registry's values stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from luminary._lazy import lazy_getattr

if TYPE_CHECKING:
    from luminary.names import ModelRef, parse_ref
    from luminary.registry._api import (
        LocalModel,
        alias_history,
        delete_model,
        get_model,
        list_model_versions,
        list_models,
        register_model,
        set_alias,
        unset_alias,
    )
    from luminary.registry._base import RegistryStore
    from luminary.registry._formats import (
        FORMATS,
        ModelInfo,
        PickleNotAllowedError,
        TensorSpec,
        inspect_model,
    )
    from luminary.registry._sql import SqlRegistry
    from luminary.registry.models import AliasMove, Event, Model, ModelVersion

_LAZY = {
    "ModelRef": "luminary.names",
    "parse_ref": "luminary.names",
    "AliasMove": "luminary.registry.models",
    "Event": "luminary.registry.models",
    "Model": "luminary.registry.models",
    "ModelVersion": "luminary.registry.models",
    "RegistryStore": "luminary.registry._base",
    "SqlRegistry": "luminary.registry._sql",
    "FORMATS": "luminary.registry._formats",
    "ModelInfo": "luminary.registry._formats",
    "PickleNotAllowedError": "luminary.registry._formats",
    "TensorSpec": "luminary.registry._formats",
    "inspect_model": "luminary.registry._formats",
    "LocalModel": "luminary.registry._api",
    "alias_history": "luminary.registry._api",
    "delete_model": "luminary.registry._api",
    "get_model": "luminary.registry._api",
    "list_model_versions": "luminary.registry._api",
    "list_models": "luminary.registry._api",
    "register_model": "luminary.registry._api",
    "set_alias": "luminary.registry._api",
    "unset_alias": "luminary.registry._api",
}

__all__ = [
    "AliasMove",
    "Event",
    "FORMATS",
    "LocalModel",
    "Model",
    "ModelInfo",
    "ModelRef",
    "ModelVersion",
    "PickleNotAllowedError",
    "RegistryStore",
    "SqlRegistry",
    "TensorSpec",
    "alias_history",
    "delete_model",
    "get_model",
    "inspect_model",
    "list_model_versions",
    "list_models",
    "parse_ref",
    "register_model",
    "set_alias",
    "unset_alias",
]

__getattr__ = lazy_getattr(_LAZY)
