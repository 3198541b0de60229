"""Lineage: from a model version back to its data, code and parameters, and forward to aliases.

``dataset versions → run (params, code commit, environment, metrics) → model version →
derived versions → aliases``. A derived version (quantised, compiled) is followed up its
parent chain to the run that trained the original.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from luminary.datasets.models import DatasetVersion
from luminary.registry.models import ModelVersion
from luminary.tracking import Run

if TYPE_CHECKING:
    from luminary.store import Store

__all__ = ["Lineage", "TrialOrigin", "lineage"]


@dataclass(frozen=True)
class TrialOrigin:
    """The hyperparameter study whose trial the run was (read from the run: its tags
    ``tune.study`` and ``tune.trial``, and its parent, the study's run)."""

    study: str
    trial: int
    study_run_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "trial": self.trial, "study_run_id": self.study_run_id}


@dataclass(frozen=True)
class Lineage:
    version: ModelVersion
    ancestors: list[ModelVersion]  # parent, grandparent, … (derived versions only)
    run: Run | None
    code: dict[str, Any] | None  # git commit, branch, dirty, remote
    environment: dict[str, Any]  # python, host, packages count, gpus
    inputs: list[DatasetVersion]
    derived: list[ModelVersion] = field(default_factory=list)
    trial: TrialOrigin | None = None  # the study the run was a trial of

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version.to_dict(),
            "ancestors": [a.ref for a in self.ancestors],
            "run": self.run.to_dict() if self.run else None,
            "code": self.code,
            "environment": self.environment,
            "inputs": [d.to_dict() for d in self.inputs],
            "derived": [d.ref for d in self.derived],
            "aliases": list(self.version.aliases),
            "trial": self.trial.to_dict() if self.trial else None,
        }


def lineage(ref: str, store: Store | None = None) -> Lineage:
    if store is None:
        from luminary._current import get_store

        store = get_store()
    version = store.get_model_version(ref)
    ancestors: list[ModelVersion] = []
    origin = version
    seen = {version.id}
    while origin.source_run_id is None and origin.parent is not None:
        origin = store.get_model_version(origin.parent)
        if origin.id in seen:  # a cycle cannot be registered, but never loop on bad data
            break
        seen.add(origin.id)
        ancestors.append(origin)
    run = env = None
    inputs: list[DatasetVersion] = []
    if origin.source_run_id is not None:
        run = store.get_run(origin.source_run_id)
        env = store.get_environment(run.id)
        inputs = store.run_inputs(run.id)
    environment: dict[str, Any] = {}
    if env:
        environment = {
            "python": env.get("python", {}).get("version"),
            "host": env.get("host"),
            "cpu": env.get("cpu", {}).get("model"),
            "gpus": [g.get("name") for g in env.get("gpus", [])],
            "packages": len(env.get("packages", {})),
            "command": env.get("command"),
        }
    trial = None
    if run is not None and "tune.trial" in run.tags and "tune.study" in run.tags:
        try:
            number = int(run.tags["tune.trial"])
        except ValueError:
            number = -1
        if number >= 0:
            trial = TrialOrigin(run.tags["tune.study"], number, run.parent_id)
    return Lineage(
        trial=trial,
        version=version,
        ancestors=ancestors,
        run=run,
        code=(env or {}).get("git"),
        environment=environment,
        inputs=inputs,
        derived=store.derived_versions(version.ref),
    )


class _CallableModule(types.ModuleType):
    """``lm.lineage`` is the function, but importing this module (as the CLI and the server do)
    makes Python set the package attribute ``luminary.lineage`` to the module; calling the
    module calls the function, so ``lm.lineage(ref)`` works either way."""

    def __call__(self, ref: str, store: Store | None = None) -> Lineage:
        return lineage(ref, store)


sys.modules[__name__].__class__ = _CallableModule
