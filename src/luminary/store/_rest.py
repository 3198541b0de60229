"""The REST store: the Store interface over HTTP, talking to ``luminary server``.

Chosen by ``LUMINARY_URI=http://host:port`` (``open_store``); user code does not change. One
:class:`httpx.Client` pools connections and is shared by every thread (httpx clients are
thread-safe). Calls that are safe to repeat (GET, HEAD, PUT, DELETE, and any call whose
connection never opened) are retried with exponential backoff when the server cannot be
reached or answers 503 (so is a metric POST with a batch id, which the server stores once);
error bodies ``{code, message, details}`` become the same
:class:`~luminary.errors.LuminaryError` subclass the server raised. A server that cannot be
reached after the retries raises :class:`~luminary.errors.BackendUnavailableError`.

``LUMINARY_TOKEN``, if set, is sent as ``Authorization: Bearer …``; a
:class:`CleartextTokenWarning` is issued once per URL when that would go over ``http://`` to
a host other than this machine (use ``https://`` through a TLS proxy). The ``actor`` arguments of
the Store interface are not sent: the server records the authenticated principal (the token's
user) as the actor of every registration, alias move and deletion, and as the user of every
job submitted. Compute's calls live in :class:`~luminary.store._rest_compute.RestCompute`
(``self.compute``) and tune's in :class:`~luminary.store._rest_tune.RestTune` (``self.tune``),
to which the methods here forward.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from luminary.compute import (
    Agent,
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
from luminary.datasets.models import Dataset, DatasetVersion, Mode
from luminary.errors import (
    BackendUnavailableError,
    FilterSyntaxError,
    InvalidArgumentError,
    LuminaryError,
    NotFoundError,
)
from luminary.registry.models import AliasMove, Event, Model, ModelRef, ModelVersion, parse_ref
from luminary.store import Store
from luminary.store import wire as w
from luminary.store._remote_blobs import RemoteBlobs
from luminary.store._rest_compute import RestCompute
from luminary.store._rest_tune import RestTune
from luminary.tracking import MetricPoint
from luminary.tracking.models import (
    ArtifactEntry,
    MetricHistory,
    ParamValue,
    Project,
    Run,
    RunStatus,
)
from luminary.tune import StudyRecord, StudySummary, TrialPatch, TrialRecord

__all__ = ["CleartextTokenWarning", "RestStore", "error_from_body", "warn_cleartext_token"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})


def _codes() -> dict[str, type[LuminaryError]]:
    """Error classes by code; where subclasses share a code, the most general one wins."""
    out: dict[str, type[LuminaryError]] = {}
    todo: list[type[LuminaryError]] = [LuminaryError]
    while todo:
        cls = todo.pop(0)  # breadth first: a parent is seen before its subclasses
        out.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return out


def error_from_body(status: int, body: Any) -> LuminaryError:
    """The Luminary error an error response stands for (by its ``code``)."""
    if not isinstance(body, dict) or "code" not in body:
        if status == 404:  # a HEAD answer has no body
            return NotFoundError(f"the server answered HTTP 404: {str(body)[:500]}")
        return LuminaryError(f"the server answered HTTP {status}: {str(body)[:500]}")
    code, message = str(body["code"]), str(body.get("message", ""))
    details = body.get("details") or {}
    if code == FilterSyntaxError.code and {"reason", "text", "position"} <= details.keys():
        return FilterSyntaxError(details["reason"], details["text"], int(details["position"]))
    cls = _codes().get(code)
    if cls is None or cls is FilterSyntaxError:
        cls = InvalidArgumentError if 400 <= status < 500 else LuminaryError
    return cls(message)


_warned: set[str] = set()


def warn_cleartext_token(url: str) -> None:
    """Warn (once per URL) that a token is about to travel unencrypted: ``http://`` to a host
    that is not this machine. Put the server behind a TLS proxy and use ``https://``."""
    from luminary._net import host_of, is_loopback

    scheme, _, rest = url.partition("://")
    host = host_of(rest.split("/", 1)[0])
    if scheme.lower() != "http" or is_loopback(host) or url in _warned:
        return
    _warned.add(url)
    warnings.warn(
        f"LUMINARY_TOKEN will be sent unencrypted to {url} (http:// to {host}, not this "
        "machine): anyone on the network path can read and reuse it. Put the server behind a "
        "TLS proxy and set LUMINARY_URI=https://...",
        CleartextTokenWarning,
        stacklevel=3,
    )


class CleartextTokenWarning(UserWarning):
    """A token is sent over plain HTTP to another machine."""


def _within(projects: Sequence[str] | None) -> list[str] | None:
    """``within`` as a repeated query parameter (callers answer an empty one themselves)."""
    return None if projects is None else list(projects)


def _seg(value: str) -> str:
    return quote(value, safe="@")


def _ref(ref: str | ModelRef, kind: str) -> str:
    return _seg(str(ref if isinstance(ref, ModelRef) else parse_ref(ref, kind)))


class RestStore(Store):
    """A Store served by ``luminary server`` at ``url`` (``http://host:port``)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 4,
        cache_dir: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            msg = f"LUMINARY_URI={url!r} is not valid; give http://host:port or https://host"
            raise InvalidArgumentError(msg)
        self.url = url.rstrip("/")
        headers = {"user-agent": "luminary"}
        if token:
            headers["authorization"] = f"Bearer {token}"
            warn_cleartext_token(self.url)
        self._client = httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            transport=transport,
        )
        self._retries = retries
        self.blobs = RemoteBlobs(self, cache_dir=cache_dir)
        self.compute = RestCompute(self, token)
        self.tune = RestTune(self, token)

    def __repr__(self) -> str:
        return f"RestStore({self.url!r})"

    def close(self) -> None:
        self._client.close()

    # -- transport -------------------------------------------------------------------------
    def request(
        self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send one request (retrying what is safe to retry); raise the mapped error on 4xx/5xx.

        ``idempotent``: whether the request is safe to repeat (default: by its method; a POST
        that carries a batch id is)."""
        repeatable = method in _IDEMPOTENT if idempotent is None else idempotent
        delay = 0.1
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                resp = self._client.request(method, path, **kwargs)
            except httpx.ConnectError as exc:  # the request never left: always safe to repeat
                if last:
                    raise self._unreachable(exc) from exc
            except httpx.TransportError as exc:
                if last or not repeatable:
                    raise self._unreachable(exc) from exc
            else:
                if resp.status_code == 503 and repeatable and not last:
                    resp.close()
                else:
                    if resp.status_code >= 400:
                        raise error_from_body(resp.status_code, _json_or_text(resp))
                    return resp
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        msg = "unreachable"  # pragma: no cover
        raise AssertionError(msg)  # pragma: no cover

    def _unreachable(self, exc: Exception) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"the Luminary server at {self.url} does not answer ({type(exc).__name__}: {exc}); "
            "check that `luminary server` runs there and LUMINARY_URI is right"
        )

    def _get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return w.loads(self.request("GET", path, params=clean).content)

    def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotent: bool | None = None,
        **params: Any,
    ) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        resp = self.request(
            method,
            path,
            idempotent=idempotent,
            params=clean,
            content=None if body is None else w.dumps_request(body),
            headers={"content-type": "application/json"},
        )
        return w.loads(resp.content) if resp.content else None

    # -- projects --------------------------------------------------------------------------
    def create_project(self, name: str, description: str = "") -> Project:
        body = {"name": name, "description": description}
        return w.dec_project(self._send("POST", "/projects", body))

    def get_project(self, name: str) -> Project:
        return w.dec_project(self._get(f"/projects/{_seg(name)}"))

    def list_projects(self) -> list[Project]:
        return [w.dec_project(p) for p in self._get("/projects")]

    # -- runs ------------------------------------------------------------------------------
    def create_run(
        self,
        project: str,
        *,
        name: str | None = None,
        parent_id: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        tags: Mapping[str, str] | None = None,
        start_ms: int | None = None,
    ) -> Run:
        body = {
            "project": project,
            "name": name,
            "parent_id": parent_id,
            "params": w.enc_params(params or {}),
            "tags": dict(tags or {}),
            "start_ms": start_ms,
        }
        return w.dec_run(self._send("POST", "/runs", body))

    def get_run(self, run_id: str) -> Run:
        return w.dec_run(self._get(f"/runs/{_seg(run_id)}"))

    def search_runs(
        self,
        project: str | None,
        filter: str | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = 1000,
        offset: int = 0,
        *,
        within: Sequence[str] | None = None,
    ) -> list[Run]:
        if within is not None and not within:
            return []
        order = [order_by] if isinstance(order_by, str) else list(order_by or [])
        found = self._get(
            "/runs",
            project=project,
            filter=filter,
            order_by=order or None,
            limit=limit,
            offset=offset,
            within=_within(within),
        )
        return [w.dec_run(r) for r in found]

    def count_runs(
        self, project: str | None, filter: str | None = None, *, within: Sequence[str] | None = None
    ) -> int:
        if within is not None and not within:
            return 0
        found = self._get("/runs/count", project=project, filter=filter, within=_within(within))
        return int(found["count"])

    def set_run_status(self, run_id: str, status: RunStatus, end_ms: int | None = None) -> None:
        body = {"status": RunStatus(status).value, "end_ms": end_ms}
        self._send("PUT", f"/runs/{_seg(run_id)}/status", body)

    def heartbeat(self, run_id: str, now_ms: int) -> None:
        self._send("POST", f"/runs/{_seg(run_id)}/heartbeat", {"now_ms": now_ms})

    def reap_stale_runs(self, now_ms: int | None = None) -> int:
        return int(self._send("POST", "/runs/reap", {"now_ms": now_ms})["count"])

    def delete_run(self, run_id: str) -> None:
        self._send("DELETE", f"/runs/{_seg(run_id)}")

    def log_params(self, run_id: str, params: Mapping[str, ParamValue]) -> None:
        self._send("POST", f"/runs/{_seg(run_id)}/params", {"params": w.enc_params(params)})

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._send("POST", f"/runs/{_seg(run_id)}/tags", {"tags": dict(tags)})

    # -- metrics ---------------------------------------------------------------------------
    def write_metrics(
        self,
        run_id: str,
        new_series: Sequence[tuple[int, str]],
        points: Sequence[MetricPoint],
        batch_id: str | None = None,
    ) -> dict[str, int]:
        pv = w.point_value
        body: dict[str, Any] = {
            "series": [[sid, key] for sid, key in new_series],
            "points": [[p[0], p[1], p[2], pv(p[3])] for p in points],
        }
        if batch_id is not None:
            body["batch_id"] = batch_id
        # With a batch id the server stores the batch once, however often it arrives: safe to
        # retry after a timeout, a dropped connection or a 503.
        path = f"/runs/{_seg(run_id)}/metrics"
        out = self._send("POST", path, body, idempotent=batch_id is not None)
        return {str(k): int(v) for k, v in out["remapped"].items()}

    def metric_series(self, run_id: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._get(f"/runs/{_seg(run_id)}/metrics").items()}

    def last_steps(self, run_id: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._get(f"/runs/{_seg(run_id)}/last-steps").items()}

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        return w.dec_history(self._get(f"/runs/{_seg(run_id)}/metric-history", key=key))

    # -- artifacts and environment ---------------------------------------------------------
    def add_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry]) -> None:
        body = {"entries": [w.enc_artifact(e) for e in entries]}
        self._send("POST", f"/runs/{_seg(run_id)}/artifacts", body)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        found = self._get(f"/runs/{_seg(run_id)}/artifacts", prefix=prefix)
        return [w.dec_artifact(e) for e in found]

    def set_environment(self, run_id: str, environment: Mapping[str, Any]) -> None:
        self._send("PUT", f"/runs/{_seg(run_id)}/environment", dict(environment))

    def get_environment(self, run_id: str) -> dict[str, Any]:
        return dict(self._get(f"/runs/{_seg(run_id)}/environment"))

    # -- registry --------------------------------------------------------------------------
    def create_model(self, name: str, project: str, description: str = "") -> Model:
        body = {"name": name, "project": project, "description": description}
        return w.dec_model(self._send("POST", "/models", body))

    def get_model(self, name: str) -> Model:
        return w.dec_model(self._get(f"/models/{_seg(name)}"))

    def list_models(self, project: str | None = None) -> list[Model]:
        return [w.dec_model(m) for m in self._get("/models", project=project)]

    def delete_model(self, name: str, actor: str) -> None:
        self._send("DELETE", f"/models/{_seg(name)}")

    def create_model_version(
        self,
        name: str,
        *,
        project: str,
        digest: str,
        size: int,
        format: str,
        filename: str,
        signature: Mapping[str, Any],
        metadata: Mapping[str, Any],
        source_run_id: str | None,
        parent: str | ModelRef | None,
        description: str,
        actor: str,
    ) -> ModelVersion:
        body = {
            "project": project,
            "digest": digest,
            "size": size,
            "format": format,
            "filename": filename,
            "signature": dict(signature),
            "metadata": dict(metadata),
            "source_run_id": source_run_id,
            "parent": None if parent is None else str(parent),
            "description": description,
        }
        return w.dec_version(self._send("POST", f"/models/{_seg(name)}/versions", body))

    def get_model_version(self, ref: str | ModelRef) -> ModelVersion:
        return w.dec_version(self._get(f"/model-versions/{_ref(ref, 'model')}"))

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        return [w.dec_version(v) for v in self._get(f"/models/{_seg(name)}/versions")]

    def delete_model_version(self, ref: str | ModelRef, actor: str) -> None:
        self._send("DELETE", f"/model-versions/{_ref(ref, 'model')}")

    def set_alias(self, name: str, alias: str, version: int, actor: str) -> AliasMove:
        body = {"version": version}
        path = f"/models/{_seg(name)}/aliases/{_seg(alias)}"
        return w.dec_move(self._send("PUT", path, body))

    def unset_alias(self, name: str, alias: str, actor: str) -> AliasMove:
        path = f"/models/{_seg(name)}/aliases/{_seg(alias)}"
        return w.dec_move(self._send("DELETE", path))

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        found = self._get(f"/models/{_seg(name)}/alias-history", alias=alias)
        return [w.dec_move(m) for m in found]

    def list_events(
        self, after: int = 0, limit: int = 100, kinds: Sequence[str] | None = None
    ) -> list[Event]:
        found = self._get("/events", after=after, limit=limit, kinds=list(kinds or []) or None)
        return [w.dec_event(e) for e in found]

    def versions_from_run(self, run_id: str) -> list[ModelVersion]:
        return [w.dec_version(v) for v in self._get(f"/runs/{_seg(run_id)}/model-versions")]

    def derived_versions(self, ref: str | ModelRef) -> list[ModelVersion]:
        found = self._get(f"/model-versions/{_ref(ref, 'model')}/derived")
        return [w.dec_version(v) for v in found]

    # -- datasets --------------------------------------------------------------------------
    def create_dataset_version(
        self,
        name: str,
        *,
        project: str,
        mode: Mode,
        root: str,
        manifest_digest: str,
        schema_digest: str | None,
        file_count: int,
        total_bytes: int,
        message: str,
        actor: str,
    ) -> DatasetVersion:
        body = {
            "project": project,
            "mode": mode,
            "root": root,
            "manifest_digest": manifest_digest,
            "schema_digest": schema_digest,
            "file_count": file_count,
            "total_bytes": total_bytes,
            "message": message,
        }
        found = self._send("POST", f"/datasets/{_seg(name)}/versions", body)
        return w.dec_dataset_version(found)

    def get_dataset(self, name: str) -> Dataset:
        return w.dec_dataset(self._get(f"/datasets/{_seg(name)}"))

    def list_datasets(self, project: str | None = None) -> list[Dataset]:
        return [w.dec_dataset(d) for d in self._get("/datasets", project=project)]

    def get_dataset_version(self, ref: str | ModelRef) -> DatasetVersion:
        return w.dec_dataset_version(self._get(f"/dataset-versions/{_ref(ref, 'dataset')}"))

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        found = self._get(f"/datasets/{_seg(name)}/versions")
        return [w.dec_dataset_version(v) for v in found]

    def add_run_inputs(self, run_id: str, version_ids: Sequence[str]) -> None:
        body = {"version_ids": list(version_ids)}
        self._send("POST", f"/runs/{_seg(run_id)}/inputs", body)

    def run_inputs(self, run_id: str) -> list[DatasetVersion]:
        found = self._get(f"/runs/{_seg(run_id)}/inputs")
        return [w.dec_dataset_version(v) for v in found]

    def runs_using(self, ref: str | ModelRef) -> list[str]:
        found = self._get(f"/dataset-versions/{_ref(ref, 'dataset')}/runs")
        return [str(r) for r in found["run_ids"]]

    # -- compute ---------------------------------------------------------------------------
    def put_pool(self, pool: Pool) -> Pool:
        return self.compute.put_pool(pool)

    def get_pool(self, name: str) -> Pool:
        return self.compute.get_pool(name)

    def list_pools(self) -> list[Pool]:
        return self.compute.list_pools()

    def remove_pool(self, name: str) -> None:
        return self.compute.remove_pool(name)

    def set_quota(self, quota: Quota) -> Quota:
        return self.compute.set_quota(quota)

    def list_quotas(self) -> list[Quota]:
        return self.compute.list_quotas()

    def remove_quota(self, project: str) -> None:
        return self.compute.remove_quota(project)

    def submit_job(self, spec: JobSpec, *, user: str | None = None) -> Job:
        return self.compute.submit_job(spec, user=user)

    def get_job(self, job_id: str) -> Job:
        return self.compute.get_job(job_id)

    def list_jobs(
        self,
        project: str | None = None,
        states: Collection[JobState] | None = None,
        *,
        pool: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        return self.compute.list_jobs(project, states, pool=pool, limit=limit)

    def cancel_job(self, job_id: str, reason: str = "cancelled") -> Job:
        return self.compute.cancel_job(job_id, reason)

    def explain_job(self, job_id: str) -> list[str]:
        return self.compute.explain_job(job_id)

    def compute_shares(self) -> list[ProjectShare]:
        return self.compute.compute_shares()

    def compute_history(self, since_ms: int) -> list[UsageSample]:
        return self.compute.compute_history(since_ms)

    def runner_environment(self) -> dict[str, str]:
        return self.compute.runner_environment()

    def queue_version(self) -> int:
        return self.compute.queue_version()

    def claim_jobs(self, pool: str, agent: Agent, *, limit: int = 64) -> list[Job]:
        return self.compute.claim_jobs(pool, agent, limit=limit)

    def list_agents(self) -> list[Agent]:
        return self.compute.list_agents()

    def job_launched(self, job_id: str, attempt: int, executor_ref: str) -> None:
        return self.compute.job_launched(job_id, attempt, executor_ref)

    def job_lost(self, job_id: str, attempt: int, reason: str) -> Job:
        return self.compute.job_lost(job_id, attempt, reason)

    def schedule(self, now_ms: int | None = None) -> int:
        return self.compute.schedule(now_ms)

    def task_started(self, job_id: str, attempt: int, rank: int, node: str) -> Job:
        return self.compute.task_started(job_id, attempt, rank, node)

    def task_heartbeat(self, job_id: str, attempt: int, rank: int) -> Signals:
        return self.compute.task_heartbeat(job_id, attempt, rank)

    def append_job_logs(self, job_id: str, chunks: Sequence[LogChunk]) -> None:
        return self.compute.append_job_logs(job_id, chunks)

    def read_job_logs(
        self, job_id: str, after: Mapping[str, int] | None = None, *, limit: int = 1000
    ) -> list[LogChunk]:
        return self.compute.read_job_logs(job_id, after, limit=limit)

    def task_finished(self, job_id: str, attempt: int, rank: int, report: TaskReport) -> Job:
        return self.compute.task_finished(job_id, attempt, rank, report)

    # -- tune ------------------------------------------------------------------------------
    def create_study(self, project: str, name: str, directions: Sequence[str]) -> StudyRecord:
        return self.tune.create_study(project, name, directions)

    def get_study(self, project: str, name: str) -> StudyRecord:
        return self.tune.get_study(project, name)

    def get_study_by_id(self, study_id: int) -> StudyRecord:
        return self.tune.get_study_by_id(study_id)

    def list_studies(self, project: str | None = None) -> list[StudySummary]:
        return self.tune.list_studies(project)

    def delete_study(self, study_id: int) -> None:
        self.tune.delete_study(study_id)

    def set_study_attrs(
        self,
        study_id: int,
        user_attrs: Mapping[str, Any] | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.tune.set_study_attrs(study_id, user_attrs, system_attrs)

    def create_trial(
        self, study_id: int, template: TrialRecord | None = None, *, run_id: str | None = None
    ) -> TrialRecord:
        return self.tune.create_trial(study_id, template, run_id=run_id)

    def update_trial(self, trial_id: int, patch: TrialPatch) -> bool:
        return self.tune.update_trial(trial_id, patch)

    def get_trial(self, trial_id: int) -> TrialRecord:
        return self.tune.get_trial(trial_id)

    def trial_id_of(self, study_id: int, number: int) -> int:
        return self.tune.trial_id_of(study_id, number)

    def read_trials(
        self, study_id: int, after_id: int = 0, ids: Collection[int] = ()
    ) -> list[TrialRecord]:
        return self.tune.read_trials(study_id, after_id, ids)

    def beat_trials(self, trial_ids: Collection[int], now_ms: int) -> None:
        self.tune.beat_trials(trial_ids, now_ms)

    def stale_trials(self, study_id: int, grace_ms: int, now_ms: int) -> list[int]:
        return self.tune.stale_trials(study_id, grace_ms, now_ms)


def _json_or_text(resp: httpx.Response) -> Any:
    try:
        return w.loads(resp.content)
    except ValueError:
        return resp.text
