"""The SQL Store: the domains' SQL parts composed over one engine and one blob store.

``SqlStore(db_url, blobs)`` opens SQLite (the embedded default) or PostgreSQL, applies the
schema's migrations, and builds one part per domain — :class:`~luminary.tracking.SqlTracking`,
:class:`~luminary.registry.SqlRegistry`, :class:`~luminary.datasets.SqlDatasets` and
:class:`~luminary.auth.SqlAuth`. Each part owns its tables' SQL; the registry's and the
datasets' parts are given the tracking part for projects and run ids. The methods below only
forward, so every Store method has exactly one implementation.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from luminary.auth import AuthStore, Principal, Role, SqlAuth, Token, User
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
    SqlCompute,
    TaskReport,
    UsageSample,
)
from luminary.datasets import Dataset, DatasetVersion, Mode, SqlDatasets
from luminary.names import ModelRef
from luminary.registry import AliasMove, Event, Model, ModelVersion, SqlRegistry
from luminary.storage.blobs import BlobStore
from luminary.storage.engine import create_engine, migrate
from luminary.store import Store
from luminary.tracking import (
    ArtifactEntry,
    MetricHistory,
    MetricPoint,
    ParamValue,
    Project,
    Run,
    RunStatus,
    SqlTracking,
)
from luminary.tune import SqlTune, StudyRecord, StudySummary, TrialPatch, TrialRecord

__all__ = ["SqlStore"]


class SqlStore(Store, AuthStore):
    """A Store on SQLAlchemy: ``sqlite:///path`` or ``postgresql+psycopg://…``."""

    def __init__(
        self,
        db_url: str,
        blobs: BlobStore | str,
        *,
        stale_after_s: float = 30.0,
        sqlite_sync: str = "NORMAL",
    ) -> None:
        self.engine = create_engine(db_url, sqlite_sync=sqlite_sync)
        migrate(self.engine)
        self.blobs = blobs if isinstance(blobs, BlobStore) else BlobStore(blobs)
        self.tracking = SqlTracking(self.engine, self.blobs, stale_after_s=stale_after_s)
        self.registry = SqlRegistry(self.engine, self.tracking)
        self.datasets = SqlDatasets(self.engine, self.tracking)
        self.auth = SqlAuth(self.engine, self.tracking)
        self.compute = SqlCompute(
            self.engine, self.tracking, self.datasets, blobs_url=self.blobs.url
        )
        self.tune = SqlTune(self.engine, self.tracking)

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"SqlStore({url!r}, blobs={self.blobs.url!r})"

    def close(self) -> None:
        self.tune.close()
        self.engine.dispose()

    def create_project(self, name: str, description: str = "") -> Project:
        return self.tracking.create_project(name, description)

    def get_project(self, name: str) -> Project:
        return self.tracking.get_project(name)

    def list_projects(self) -> list[Project]:
        return self.tracking.list_projects()

    def ensure_project(self, name: str) -> Project:
        return self.tracking.ensure_project(name)

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
        return self.tracking.create_run(
            project, name=name, parent_id=parent_id, params=params, tags=tags, start_ms=start_ms
        )

    def get_run(self, run_id: str) -> Run:
        return self.tracking.get_run(run_id)

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
        return self.tracking.search_runs(project, filter, order_by, limit, offset, within=within)

    def count_runs(
        self, project: str | None, filter: str | None = None, *, within: Sequence[str] | None = None
    ) -> int:
        return self.tracking.count_runs(project, filter, within=within)

    def set_run_status(self, run_id: str, status: RunStatus, end_ms: int | None = None) -> None:
        return self.tracking.set_run_status(run_id, status, end_ms)

    def heartbeat(self, run_id: str, now_ms: int) -> None:
        return self.tracking.heartbeat(run_id, now_ms)

    def reap_stale_runs(self, now_ms: int | None = None) -> int:
        return self.tracking.reap_stale_runs(now_ms)

    def delete_run(self, run_id: str) -> None:
        return self.tracking.delete_run(run_id)

    def log_params(self, run_id: str, params: Mapping[str, ParamValue]) -> None:
        return self.tracking.log_params(run_id, params)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        return self.tracking.set_tags(run_id, tags)

    def write_metrics(
        self,
        run_id: str,
        new_series: Sequence[tuple[int, str]],
        points: Sequence[MetricPoint],
        batch_id: str | None = None,
    ) -> dict[str, int]:
        return self.tracking.write_metrics(run_id, new_series, points, batch_id)

    def metric_series(self, run_id: str) -> dict[str, int]:
        return self.tracking.metric_series(run_id)

    def last_steps(self, run_id: str) -> dict[str, int]:
        return self.tracking.last_steps(run_id)

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        return self.tracking.get_metric_history(run_id, key)

    def metric_envelope(
        self, run_id: str, key: str, buckets: int
    ) -> tuple[int, list[tuple[int, int, float, float]]] | None:
        return self.tracking.metric_envelope(run_id, key, buckets)

    def add_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry]) -> None:
        return self.tracking.add_artifacts(run_id, entries)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        return self.tracking.list_artifacts(run_id, prefix)

    def set_environment(self, run_id: str, environment: Mapping[str, Any]) -> None:
        return self.tracking.set_environment(run_id, environment)

    def get_environment(self, run_id: str) -> dict[str, Any]:
        return self.tracking.get_environment(run_id)

    def create_model(self, name: str, project: str, description: str = "") -> Model:
        return self.registry.create_model(name, project, description)

    def get_model(self, name: str) -> Model:
        return self.registry.get_model(name)

    def list_models(self, project: str | None = None) -> list[Model]:
        return self.registry.list_models(project)

    def delete_model(self, name: str, actor: str) -> None:
        return self.registry.delete_model(name, actor)

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
        return self.registry.create_model_version(
            name,
            project=project,
            digest=digest,
            size=size,
            format=format,
            filename=filename,
            signature=signature,
            metadata=metadata,
            source_run_id=source_run_id,
            parent=parent,
            description=description,
            actor=actor,
        )

    def get_model_version(self, ref: str | ModelRef) -> ModelVersion:
        return self.registry.get_model_version(ref)

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        return self.registry.list_model_versions(name)

    def delete_model_version(self, ref: str | ModelRef, actor: str) -> None:
        return self.registry.delete_model_version(ref, actor)

    def set_alias(self, name: str, alias: str, version: int, actor: str) -> AliasMove:
        return self.registry.set_alias(name, alias, version, actor)

    def unset_alias(self, name: str, alias: str, actor: str) -> AliasMove:
        return self.registry.unset_alias(name, alias, actor)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        return self.registry.alias_history(name, alias)

    def list_events(
        self, after: int = 0, limit: int = 100, kinds: Sequence[str] | None = None
    ) -> list[Event]:
        return self.registry.list_events(after, limit, kinds)

    def versions_from_run(self, run_id: str) -> list[ModelVersion]:
        return self.registry.versions_from_run(run_id)

    def derived_versions(self, ref: str | ModelRef) -> list[ModelVersion]:
        return self.registry.derived_versions(ref)

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
        return self.datasets.create_dataset_version(
            name,
            project=project,
            mode=mode,
            root=root,
            manifest_digest=manifest_digest,
            schema_digest=schema_digest,
            file_count=file_count,
            total_bytes=total_bytes,
            message=message,
            actor=actor,
        )

    def get_dataset(self, name: str) -> Dataset:
        return self.datasets.get_dataset(name)

    def list_datasets(self, project: str | None = None) -> list[Dataset]:
        return self.datasets.list_datasets(project)

    def get_dataset_version(self, ref: str | ModelRef) -> DatasetVersion:
        return self.datasets.get_dataset_version(ref)

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        return self.datasets.list_dataset_versions(name)

    def add_run_inputs(self, run_id: str, version_ids: Sequence[str]) -> None:
        return self.datasets.add_run_inputs(run_id, version_ids)

    def run_inputs(self, run_id: str) -> list[DatasetVersion]:
        return self.datasets.run_inputs(run_id)

    def runs_using(self, ref: str | ModelRef) -> list[str]:
        return self.datasets.runs_using(ref)

    def create_user(self, name: str, *, is_admin: bool = False) -> User:
        return self.auth.create_user(name, is_admin=is_admin)

    def get_user(self, name: str) -> User:
        return self.auth.get_user(name)

    def list_users(self) -> list[User]:
        return self.auth.list_users()

    def ensure_user(self, name: str, *, is_admin: bool = False) -> User:
        return self.auth.ensure_user(name, is_admin=is_admin)

    def grant(self, user: str, project: str, role: Role) -> None:
        return self.auth.grant(user, project, role)

    def create_token(
        self, user: str, *, description: str = "", expires_in_s: float | None = None
    ) -> tuple[Token, str]:
        return self.auth.create_token(user, description=description, expires_in_s=expires_in_s)

    def list_tokens(self, user: str | None = None) -> list[Token]:
        return self.auth.list_tokens(user)

    def revoke_token(self, token_id: str) -> Token:
        return self.auth.revoke_token(token_id)

    def authenticate(self, secret: str) -> Principal:
        return self.auth.authenticate(secret)

    def has_admin_token(self) -> bool:
        return self.auth.has_admin_token()

    def dataset_version_projects(self, ids: Sequence[str]) -> dict[str, str]:
        return self.auth.dataset_version_projects(ids)

    def referenced_blobs(self, digests: Collection[str], among: Collection[str]) -> set[str]:
        return self.auth.referenced_blobs(digests, among)

    def record_upload(self, digest: str, user: str) -> None:
        return self.auth.record_upload(digest, user)

    def uploaded_blobs(self, digests: Collection[str], user: str) -> set[str]:
        return self.auth.uploaded_blobs(digests, user)

    def copy_manifests(self, among: Collection[str]) -> list[tuple[str, str]]:
        return self.auth.copy_manifests(among)

    # -- compute -------------------------------------------------------------------------
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

    # -- tune ----------------------------------------------------------------------------
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
