"""Tune: ``/api/v1/studies`` and ``/api/v1/trials``, the calls of
:class:`~luminary.tune.TuneStore` for :class:`~luminary.tune.LuminaryStorage` over REST.

- ``POST /studies`` ``{project, name, directions}`` (writer in the project);
  ``GET /studies?project=`` lists summaries (of the projects the caller has a role in);
  ``GET /studies/lookup?project=&name=`` finds one by name (names are free text, so a query
  parameter); ``GET /studies/{id}``; ``DELETE /studies/{id}`` (writer);
  ``POST /studies/{id}/attrs`` ``{user_attrs, system_attrs}`` (writer);
- ``POST /studies/{id}/trials`` ``{template?, run_id?}`` (writer; an adopted run must be one
  the caller may write); ``GET /studies/{id}/trials?after_id=&ids=1,2,3``;
  ``GET /studies/{id}/trials/number/{n}`` answers ``{"id": …}``;
  ``GET /studies/{id}/stale?grace_ms=`` (timed by the server's clock);
- ``GET /trials/{id}``; ``POST /trials/{id}/patch`` with a trial patch answers
  ``{"ok": bool}`` (writer); ``POST /trials/heartbeat`` ``{"ids": [...]}`` (writer in each
  trial's project; the server's clock).

Every study and trial is authorised through its study's project: reader for reads, writer
for writes. A caller with no role there is told the study (or trial) does not exist, with the
same message as for an unknown id, so ids do not leak; a role too low answers 403. Records
travel in their ``to_dict`` form (infinities and NaN as text).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from luminary._bounds import INT64_MAX
from luminary._clock import now_ms
from luminary.auth.models import Principal, Role
from luminary.errors import InvalidArgumentError, NotFoundError
from luminary.server._app import ok
from luminary.server._auth import Caller, Guard
from luminary.store import Store
from luminary.tune import StudyRecord, TrialPatch, TrialRecord

__all__ = ["MAX_IDS", "router"]

#: The most trial ids one request may name (``ids=`` of a read, a heartbeat's ``ids``).
MAX_IDS = 10_000

V = TypeVar("V")

Id = Annotated[int, Path(ge=0, le=INT64_MAX)]
Number = Annotated[int, Path(ge=0, le=INT64_MAX)]


class StudyIn(BaseModel):
    project: str
    name: str
    directions: list[str]


class AttrsIn(BaseModel):
    user_attrs: dict[str, Any] | None = None
    system_attrs: dict[str, Any] | None = None


class TrialIn(BaseModel):
    template: dict[str, Any] | None = None
    run_id: str | None = None


class BeatIn(BaseModel):
    ids: Annotated[list[Annotated[int, Field(ge=0, le=INT64_MAX)]], Field(max_length=MAX_IDS)]


def router(store: Store, guard: Guard) -> APIRouter:
    r = APIRouter()

    def study_for(caller: Principal, study_id: int, role: Role) -> StudyRecord:
        """The study ``study_id``, once ``caller`` may act on it with ``role``."""
        hidden = f"no study with id {study_id}, or you have no role in its project"

        def found() -> tuple[StudyRecord, str]:
            study = store.get_study_by_id(study_id)
            return study, study.project

        return _authorised(guard, caller, role, hidden, found)

    def trial_for(caller: Principal, trial_id: int, role: Role) -> TrialRecord:
        hidden = f"no trial with id {trial_id}, or you have no role in its project"

        def found() -> tuple[TrialRecord, str]:
            trial = store.get_trial(trial_id)
            return trial, store.get_study_by_id(trial.study_id).project

        return _authorised(guard, caller, role, hidden, found)

    # -- studies ---------------------------------------------------------------------------
    @r.post("/studies")
    def create_study(body: StudyIn, caller: Caller) -> Response:
        guard.check(caller, "project", body.project, Role.WRITER)
        study = store.create_study(body.project, body.name, body.directions)
        return ok(study.to_dict(), 201)

    @r.get("/studies")
    def list_studies(caller: Caller, project: str | None = None) -> Response:
        if project is not None:
            guard.check(caller, "project", project, Role.READER)
            found = store.list_studies(project)
        elif (visible := guard.visible(caller)) is None:
            found = store.list_studies(None)
        else:
            found = [s for s in store.list_studies(None) if s.study.project in visible]
        return ok([s.to_dict() for s in found])

    @r.get("/studies/lookup")
    def lookup_study(project: str, name: str, caller: Caller) -> Response:
        guard.check(caller, "project", project, Role.READER)
        return ok(store.get_study(project, name).to_dict())

    @r.get("/studies/{study_id}")
    def get_study(study_id: Id, caller: Caller) -> Response:
        return ok(study_for(caller, study_id, Role.READER).to_dict())

    @r.delete("/studies/{study_id}")
    def delete_study(study_id: Id, caller: Caller) -> Response:
        study_for(caller, study_id, Role.WRITER)
        store.delete_study(study_id)
        return Response(status_code=204)

    @r.post("/studies/{study_id}/attrs")
    def set_attrs(study_id: Id, body: AttrsIn, caller: Caller) -> Response:
        study_for(caller, study_id, Role.WRITER)
        store.set_study_attrs(study_id, body.user_attrs, body.system_attrs)
        return Response(status_code=204)

    # -- trials of a study -----------------------------------------------------------------
    @r.post("/studies/{study_id}/trials")
    def create_trial(study_id: Id, body: TrialIn, caller: Caller) -> Response:
        study_for(caller, study_id, Role.WRITER)
        template = None
        if body.template is not None:
            template = _decode(TrialRecord, {**_TEMPLATE_IDS, **body.template}, "template")
        if body.run_id is not None:
            guard.check(caller, "run", body.run_id, Role.WRITER)
        trial = store.create_trial(study_id, template, run_id=body.run_id)
        return ok(trial.to_dict(), 201)

    @r.get("/studies/{study_id}/trials")
    def read_trials(
        study_id: Id,
        caller: Caller,
        after_id: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
        ids: str | None = None,
    ) -> Response:
        study_for(caller, study_id, Role.READER)
        found = store.read_trials(study_id, after_id, _ids(ids))
        return ok([t.to_dict() for t in found])

    @r.get("/studies/{study_id}/trials/number/{number}")
    def trial_id_of(study_id: Id, number: Number, caller: Caller) -> Response:
        study_for(caller, study_id, Role.READER)
        return ok({"id": store.trial_id_of(study_id, number)})

    @r.get("/studies/{study_id}/stale")
    def stale(
        study_id: Id,
        caller: Caller,
        grace_ms: Annotated[int, Query(ge=0, le=10**12)],
    ) -> Response:
        study_for(caller, study_id, Role.READER)
        return ok(store.stale_trials(study_id, grace_ms, now_ms()))

    # -- trials ----------------------------------------------------------------------------
    @r.post("/trials/heartbeat")
    def heartbeat(body: BeatIn, caller: Caller) -> Response:
        ids = list(dict.fromkeys(body.ids))
        if not caller.is_admin:
            for trial_id in ids:
                trial_for(caller, trial_id, Role.WRITER)
        store.beat_trials(ids, now_ms())
        return Response(status_code=204)

    @r.get("/trials/{trial_id}")
    def get_trial(trial_id: Id, caller: Caller) -> Response:
        return ok(trial_for(caller, trial_id, Role.READER).to_dict())

    @r.post("/trials/{trial_id}/patch")
    def patch_trial(trial_id: Id, body: dict[str, Any], caller: Caller) -> Response:
        trial_for(caller, trial_id, Role.WRITER)
        patch = _decode(TrialPatch, body, "trial patch")
        return ok({"ok": store.update_trial(trial_id, patch)})

    return r


#: A template's own id, number and run are not the new trial's: the store assigns them.
_TEMPLATE_IDS: dict[str, Any] = {"id": 0, "study_id": 0, "number": 0, "run_id": ""}


def _authorised(
    guard: Guard,
    caller: Principal,
    role: Role,
    hidden: str,
    found: Callable[[], tuple[V, str]],
) -> V:
    """What ``found`` returns (a record and its study's project), once ``caller`` holds
    ``role`` there; an unknown id and a project they have no role in answer ``hidden``."""
    if caller.is_admin:
        return found()[0]
    try:
        value, project = found()
        guard.check(caller, "project", project, role)
    except NotFoundError:
        raise NotFoundError(hidden) from None
    return value


def _decode(cls: Any, raw: Any, what: str) -> Any:
    """A record from its wire form; a malformed one is a 400 naming ``what``."""
    try:
        return cls.from_dict(raw)
    except InvalidArgumentError as exc:
        msg = f"the {what} is not valid: {exc.message}"
        raise InvalidArgumentError(msg) from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        msg = (
            f"the {what} is not valid ({type(exc).__name__}: {str(exc)[:200]}); send the "
            "shape TrialRecord.to_dict / TrialPatch.to_dict writes"
        )
        raise InvalidArgumentError(msg) from None


def _ids(text: str | None) -> list[int]:
    """``ids=1,2,3``: at most :data:`MAX_IDS` trial ids."""
    if text is None or not text.strip():
        return []
    parts = text.split(",")
    if len(parts) > MAX_IDS:
        msg = (
            f"ids names {len(parts)} trials; at most {MAX_IDS} may be read at once: split the read"
        )
        raise InvalidArgumentError(msg)
    out = []
    for part in parts:
        p = part.strip()
        if not p.isdigit() or int(p) > INT64_MAX:
            msg = (
                f"ids={text[:100]!r} is not valid: {p[:30]!r} is not a trial id; give trial "
                f"ids from 0 to {INT64_MAX}, separated by commas"
            )
            raise InvalidArgumentError(msg)
        out.append(int(p))
    return out
