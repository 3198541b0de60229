"""Tune's REST part: studies and trials over ``luminary server``'s routes
(:mod:`luminary.server._tune`), for :class:`~luminary.store._rest.RestStore`.

It holds the REST store's one transport (:meth:`RestStore.request`) and adds only the shapes:
records travel in their ``to_dict`` form. Calls that are safe to repeat are sent as
repeatable: reads, attribute merges (merging the same keys twice changes nothing) and
heartbeats. Creating a trial and patching one are not repeated (a resent claim or end would
answer differently). Heartbeats and the stale check use the server's clock: the ``now_ms``
arguments are not sent. Thread safety: as the transport, safe to share.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from luminary.store import wire as w
from luminary.tune import StudyRecord, StudySummary, TrialPatch, TrialRecord, TuneStore

if TYPE_CHECKING:
    from luminary.store._rest import RestStore

__all__ = ["RestTune"]


class RestTune(TuneStore):
    """The studies behind ``rest``'s server."""

    def __init__(self, rest: RestStore, token: str | None) -> None:
        self._rest = rest
        self._token = token

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotent: bool | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        kwargs: dict[str, Any] = {"params": clean}
        if body is not None:
            kwargs["content"] = w.dumps_request(body)
            kwargs["headers"] = {"content-type": "application/json"}
        resp = self._rest.request(method, path, idempotent=idempotent, **kwargs)
        return w.loads(resp.content) if resp.content else None

    # -- studies ---------------------------------------------------------------------------
    def create_study(self, project: str, name: str, directions: Sequence[str]) -> StudyRecord:
        body = {"project": project, "name": name, "directions": list(directions)}
        return StudyRecord.from_dict(self._call("POST", "/studies", body))

    def get_study(self, project: str, name: str) -> StudyRecord:
        params = {"project": project, "name": name}
        return StudyRecord.from_dict(self._call("GET", "/studies/lookup", params=params))

    def get_study_by_id(self, study_id: int) -> StudyRecord:
        return StudyRecord.from_dict(self._call("GET", f"/studies/{int(study_id)}"))

    def list_studies(self, project: str | None = None) -> list[StudySummary]:
        found = self._call("GET", "/studies", params={"project": project})
        return [StudySummary.from_dict(s) for s in found]

    def delete_study(self, study_id: int) -> None:
        self._call("DELETE", f"/studies/{int(study_id)}")

    def set_study_attrs(
        self,
        study_id: int,
        user_attrs: Mapping[str, Any] | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        body = {
            "user_attrs": None if user_attrs is None else dict(user_attrs),
            "system_attrs": None if system_attrs is None else dict(system_attrs),
        }
        self._call("POST", f"/studies/{int(study_id)}/attrs", body, idempotent=True)

    # -- trials ----------------------------------------------------------------------------
    def create_trial(
        self,
        study_id: int,
        template: TrialRecord | None = None,
        *,
        run_id: str | None = None,
    ) -> TrialRecord:
        body = {"template": None if template is None else template.to_dict(), "run_id": run_id}
        return TrialRecord.from_dict(self._call("POST", f"/studies/{int(study_id)}/trials", body))

    def update_trial(self, trial_id: int, patch: TrialPatch) -> bool:
        path = f"/trials/{int(trial_id)}/patch"
        return bool(self._call("POST", path, patch.to_dict())["ok"])

    def get_trial(self, trial_id: int) -> TrialRecord:
        return TrialRecord.from_dict(self._call("GET", f"/trials/{int(trial_id)}"))

    def trial_id_of(self, study_id: int, number: int) -> int:
        path = f"/studies/{int(study_id)}/trials/number/{quote(str(number), safe='')}"
        return int(self._call("GET", path)["id"])

    def read_trials(
        self, study_id: int, after_id: int = 0, ids: Collection[int] = ()
    ) -> list[TrialRecord]:
        params = {"after_id": int(after_id), "ids": ",".join(str(int(i)) for i in ids) or None}
        found = self._call("GET", f"/studies/{int(study_id)}/trials", params=params)
        return [TrialRecord.from_dict(t) for t in found]

    def beat_trials(self, trial_ids: Collection[int], now_ms: int) -> None:
        """``now_ms`` is not sent: the server beats by its own clock."""
        ids = [int(i) for i in trial_ids]
        if ids:
            self._call("POST", "/trials/heartbeat", {"ids": ids}, idempotent=True)

    def stale_trials(self, study_id: int, grace_ms: int, now_ms: int) -> list[int]:
        """``now_ms`` is not sent: the server judges staleness by its own clock."""
        path = f"/studies/{int(study_id)}/stale"
        return [int(i) for i in self._call("GET", path, params={"grace_ms": int(grace_ms)})]
