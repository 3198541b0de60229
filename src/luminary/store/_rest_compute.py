"""Compute's REST part: pools, quotas and the job queue over ``luminary server``'s routes
(:mod:`luminary.server._jobs`), for :class:`~luminary.store._rest.RestStore`.

It holds the REST store's one transport (:meth:`RestStore.request`: connection pooling,
retries, errors mapped back to their classes) and adds only the shapes. Runner and agent calls
that are safe to repeat are sent as repeatable, so a dropped connection does not lose a
heartbeat or a report: a resent log chunk is stored once, a resent report of an attempt that
already ended changes nothing. Submitting and claiming are never repeated (a lost answer to a
claim would strand the jobs it handed out). Thread safety: as the transport, safe to share.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from luminary.compute import (
    Agent,
    ComputeStore,
    Job,
    JobSpec,
    JobState,
    LogChunk,
    Pool,
    ProjectShare,
    Quota,
    Signals,
    TaskReport,
    UsageSample,
)
from luminary.store import wire as w

if TYPE_CHECKING:
    from luminary.store._rest import RestStore

__all__ = ["RestCompute"]


def _seg(text: str) -> str:
    return quote(str(text), safe="")


class RestCompute(ComputeStore):
    """The queue behind ``rest``'s server; ``token`` is what runners are given to reach it."""

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

    # -- pools and quotas ------------------------------------------------------------------
    def put_pool(self, pool: Pool) -> Pool:
        return w.dec_pool(self._call("PUT", f"/pools/{_seg(pool.name)}", w.enc_pool(pool)))

    def get_pool(self, name: str) -> Pool:
        return w.dec_pool(self._call("GET", f"/pools/{_seg(name)}"))

    def list_pools(self) -> list[Pool]:
        return [w.dec_pool(p) for p in self._call("GET", "/pools")]

    def remove_pool(self, name: str) -> None:
        self._call("DELETE", f"/pools/{_seg(name)}")

    def set_quota(self, quota: Quota) -> Quota:
        path = f"/quotas/{_seg(quota.project)}"
        return w.dec_quota(self._call("PUT", path, w.enc_quota(quota)))

    def list_quotas(self) -> list[Quota]:
        return [w.dec_quota(q) for q in self._call("GET", "/quotas")]

    def remove_quota(self, project: str) -> None:
        self._call("DELETE", f"/quotas/{_seg(project)}")

    # -- jobs ------------------------------------------------------------------------------
    def submit_job(self, spec: JobSpec, *, user: str | None = None) -> Job:
        """``user`` is not sent: the server records the authenticated caller."""
        return w.dec_job(self._call("POST", "/jobs", {"spec": w.enc_job_spec(spec)}))

    def get_job(self, job_id: str) -> Job:
        return w.dec_job(self._call("GET", f"/jobs/{_seg(job_id)}"))

    def list_jobs(
        self,
        project: str | None = None,
        states: Collection[JobState] | None = None,
        *,
        pool: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        state = None if states is None else [JobState(s).value for s in states]
        if state == []:
            return []
        params = {"project": project, "state": state, "pool": pool, "limit": limit}
        return [w.dec_job(j) for j in self._call("GET", "/jobs", params=params)]

    def cancel_job(self, job_id: str, reason: str = "cancelled") -> Job:
        path = f"/jobs/{_seg(job_id)}/cancel"
        return w.dec_job(self._call("POST", path, {"reason": reason}, idempotent=True))

    def explain_job(self, job_id: str) -> list[str]:
        return [str(s) for s in self._call("GET", f"/jobs/{_seg(job_id)}/why")]

    def compute_shares(self) -> list[ProjectShare]:
        return [w.dec_share(s) for s in self._call("GET", "/compute/shares")]

    def compute_history(self, since_ms: int) -> list[UsageSample]:
        found = self._call("GET", "/compute/history", params={"since_ms": int(since_ms)})
        return [w.dec_usage(s) for s in found]

    # -- agents ----------------------------------------------------------------------------
    def runner_environment(self) -> dict[str, str]:
        env = {"LUMINARY_URI": self._rest.url}
        if self._token:
            env["LUMINARY_TOKEN"] = self._token
        return env

    def queue_version(self) -> int:
        return int(self._call("GET", "/compute/version")["version"])

    def claim_jobs(self, pool: str, agent: Agent, *, limit: int = 64) -> list[Job]:
        body = {"pool": pool, "agent": w.enc_agent(agent), "limit": limit}
        return [w.dec_job(j) for j in self._call("POST", "/compute/claim", body)]

    def list_agents(self) -> list[Agent]:
        return [w.dec_agent(a) for a in self._call("GET", "/compute/agents")]

    def job_launched(self, job_id: str, attempt: int, executor_ref: str) -> None:
        body = {"attempt": attempt, "executor_ref": executor_ref}
        self._call("POST", f"/jobs/{_seg(job_id)}/launched", body, idempotent=True)

    def job_lost(self, job_id: str, attempt: int, reason: str) -> Job:
        body = {"attempt": attempt, "reason": reason}
        path = f"/jobs/{_seg(job_id)}/lost"
        return w.dec_job(self._call("POST", path, body, idempotent=True))

    def schedule(self, now_ms: int | None = None) -> int:
        return int(self._call("POST", "/compute/schedule", {"now_ms": now_ms})["placed"])

    # -- runners ---------------------------------------------------------------------------
    def _task(self, job_id: str, rank: int, what: str) -> str:
        return f"/jobs/{_seg(job_id)}/tasks/{int(rank)}/{what}"

    def task_started(self, job_id: str, attempt: int, rank: int, node: str) -> Job:
        body = {"attempt": attempt, "node": node}
        path = self._task(job_id, rank, "started")
        return w.dec_job(self._call("POST", path, body, idempotent=True))

    def task_heartbeat(self, job_id: str, attempt: int, rank: int) -> Signals:
        path = self._task(job_id, rank, "heartbeat")
        return w.dec_signals(self._call("POST", path, {"attempt": attempt}, idempotent=True))

    def append_job_logs(self, job_id: str, chunks: Sequence[LogChunk]) -> None:
        if not chunks:
            return
        body = {"chunks": [w.enc_log_chunk(c) for c in chunks]}
        self._call("POST", f"/jobs/{_seg(job_id)}/logs", body, idempotent=True)

    def read_job_logs(
        self, job_id: str, after: Mapping[str, int] | None = None, *, limit: int = 1000
    ) -> list[LogChunk]:
        cursor = None if not after else w.dumps_request(dict(after)).decode()
        params = {"after": cursor, "limit": limit}
        found = self._call("GET", f"/jobs/{_seg(job_id)}/logs", params=params)
        return [w.dec_log_chunk(c) for c in found]

    def task_finished(self, job_id: str, attempt: int, rank: int, report: TaskReport) -> Job:
        body = {"attempt": attempt, "report": w.enc_task_report(report)}
        path = self._task(job_id, rank, "finished")
        return w.dec_job(self._call("POST", path, body, idempotent=True))
