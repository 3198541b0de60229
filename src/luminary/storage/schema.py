"""The relational schema, as SQLAlchemy Core tables (Core, not ORM: metric ingest is executemany).

Times are integer milliseconds since the epoch (UTC). A NaN metric value is stored as NULL on
every database (SQLite has no NaN), and read back as NaN; infinities are stored as such.

The migrations in ``migrations/versions`` create exactly this; a test compares the two.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = sa.String(32)
KEY = sa.String(250)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

#: The values of ``runs.status`` (tracking's ``RunStatus``), which the filter language accepts.
RUN_STATUSES = ("queued", "running", "finished", "failed", "killed")

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("project_id", ID, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("parent_id", ID, nullable=True),
    sa.Column("start_ms", sa.BigInteger, nullable=False),
    sa.Column("end_ms", sa.BigInteger, nullable=True),
    sa.Column("heartbeat_ms", sa.BigInteger, nullable=True),
    sa.Index(None, "project_id", "start_ms"),
    sa.Index(None, "status", "heartbeat_ms"),
    sa.Index(None, "parent_id"),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    # value_type: str, int, float, bool, null, json. value_num is set for int, float and bool.
    sa.Column("value_type", sa.String(8), nullable=False),
    sa.Column("value_text", sa.Text, nullable=False),
    sa.Column("value_num", sa.Double, nullable=True),
    sa.Index(None, "key", "value_num"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Index(None, "key", "run_id"),
)

metric_series = sa.Table(
    "metric_series",
    metadata,
    # A random 62-bit id chosen by the logging process, so that logging never waits on the
    # database to learn an id.
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("key", KEY, nullable=False),
    sa.Column("last_value", sa.Double, nullable=True),
    sa.Column("last_step", sa.BigInteger, nullable=True),
    sa.Column("last_ms", sa.BigInteger, nullable=True),
    sa.Column("count", sa.BigInteger, nullable=False, default=0),
    sa.UniqueConstraint("run_id", "key"),
    sa.Index(None, "key", "last_value"),
)

metric_points = sa.Table(
    "metric_points",
    metadata,
    sa.Column("series_id", sa.BigInteger, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("ts_ms", sa.BigInteger, nullable=False),
    sa.Column("value", sa.Double, nullable=True),
    sa.Index(None, "series_id", "step"),
)

# Batch ids of recent metric writes, recorded in the transaction that stored the batch's points:
# a retried write (same run and batch id) is a no-op answered with the remap stored here. Pruned
# to the latest few per run, and to a day's worth overall.
metric_batches = sa.Table(
    "metric_batches",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("batch_id", sa.String(64), primary_key=True),
    sa.Column("remap", sa.Text, nullable=False),  # JSON {key: series_id}
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Index(None, "run_id", "at_ms"),
    sa.Index(None, "at_ms"),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Index(None, "digest"),  # who names a blob (the server's blob checks)
)

run_environment = sa.Table(
    "run_environment",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("data", sa.Text, nullable=False),
)

# -- registry -------------------------------------------------------------------------------
models = sa.Table(
    "models",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("project_id", ID, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("model_id", ID, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("format", sa.String(32), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("signature", sa.Text, nullable=False),  # JSON
    sa.Column("metadata", sa.Text, nullable=False),  # JSON
    sa.Column("source_run_id", ID, nullable=True),
    sa.Column("metrics", sa.Text, nullable=False),  # JSON snapshot of the run's metrics
    sa.Column("parent_id", ID, nullable=True),  # the version this one was derived from
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.UniqueConstraint("model_id", "version"),
    sa.Index(None, "source_run_id"),
    sa.Index(None, "parent_id"),
    sa.Index(None, "digest"),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("model_id", ID, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version_id", ID, nullable=False),
)

alias_history = sa.Table(
    "alias_history",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("model_id", ID, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Index(None, "model_id", "alias"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Index(None, "kind", "seq"),
)

# -- datasets -------------------------------------------------------------------------------
datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("project_id", ID, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("dataset_id", ID, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("root", sa.Text, nullable=False),
    sa.Column("manifest_digest", sa.String(64), nullable=False),
    sa.Column("schema_digest", sa.String(64), nullable=True),
    sa.Column("file_count", sa.BigInteger, nullable=False),
    sa.Column("total_bytes", sa.BigInteger, nullable=False),
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.UniqueConstraint("dataset_id", "version"),
    sa.Index(None, "manifest_digest"),
    sa.Index(None, "schema_digest"),
)

run_inputs = sa.Table(
    "run_inputs",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "dataset_version_id",
        ID,
        sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Index(None, "dataset_version_id"),
)

# -- access control -------------------------------------------------------------------------
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=True),
    sa.Column("revoked_ms", sa.BigInteger, nullable=True),
    sa.Column("last_used_ms", sa.BigInteger, nullable=True),
    sa.Index(None, "user_id"),
)

project_roles = sa.Table(
    "project_roles",
    metadata,
    sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("project_id", ID, sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
)

# who uploaded which blob's bytes (PUT /blobs, a completed upload session): proof that they hold
# it, so that they may name it in a run, model or dataset of their projects. One row per user
# and blob, kept while the user exists.
blob_uploads = sa.Table(
    "blob_uploads",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Index(None, "user_id"),
)


# -- compute --------------------------------------------------------------------------------
#: The values of ``jobs.state`` (compute's ``JobState``).
JOB_STATES = ("queued", "starting", "running", "succeeded", "failed", "cancelled")

# resource pools: one executor each; the pool's description (nodes, GPUs, CPUs, memory,
# executor options) is JSON, its name the key
pools = sa.Table(
    "pools",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("executor", sa.String(16), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),  # JSON
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

# per-project quotas and fair-share weights
quotas = sa.Table(
    "quotas",
    metadata,
    sa.Column("project_id", ID, sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),  # JSON
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

# the queue: one row per job; the job's run holds its params, metrics, logs and energy
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("project_id", ID, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_name", sa.String(200), nullable=True),
    sa.Column("spec", sa.Text, nullable=False),  # JSON
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("pool", sa.String(200), nullable=True),
    sa.Column("placement", sa.Text, nullable=False),  # JSON
    sa.Column("agent", sa.String(64), nullable=True),
    sa.Column("executor_ref", sa.String(200), nullable=True),
    sa.Column("submitted_ms", sa.BigInteger, nullable=False),
    sa.Column("started_ms", sa.BigInteger, nullable=True),
    sa.Column("ended_ms", sa.BigInteger, nullable=True),
    sa.Column("heartbeat_ms", sa.BigInteger, nullable=True),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("preempt_requested", sa.Boolean, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Index(None, "state"),
    sa.Index(None, "project_id", "submitted_ms"),
    sa.Index(None, "run_id"),
)

# one row per node (rank) of a job's attempt: its runner's heartbeat and how it ended
job_tasks = sa.Table(
    "job_tasks",
    metadata,
    sa.Column("job_id", ID, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("rank", sa.Integer, primary_key=True),
    sa.Column("node", sa.String(256), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("started_ms", sa.BigInteger, nullable=False),
    sa.Column("heartbeat_ms", sa.BigInteger, nullable=False),
    sa.Column("ended_ms", sa.BigInteger, nullable=True),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("cpu_s", sa.Float, nullable=True),
)

# a job's output as it is written, in chunks numbered per (attempt, rank, stream); the whole
# streams are also stored as the run's artifacts when each rank ends
job_logs = sa.Table(
    "job_logs",
    metadata,
    sa.Column("job_id", ID, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("rank", sa.Integer, primary_key=True),
    sa.Column("stream", sa.String(8), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

# executor agents serving pools, with their heartbeat: the scheduler places work only on pools
# that someone serves
compute_agents = sa.Table(
    "compute_agents",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("pool", sa.String(200), nullable=False),
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_ms", sa.BigInteger, nullable=False),
    sa.Column("heartbeat_ms", sa.BigInteger, nullable=False),
    sa.Index(None, "pool"),
)

# fair-share usage per project in GPU-hours, decayed to ``as_of_ms``; and samples of it over
# time (usage vs share, for the queue page)
compute_usage = sa.Table(
    "compute_usage",
    metadata,
    sa.Column("project_id", ID, sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("gpu_hours", sa.Float, nullable=False),
    sa.Column("as_of_ms", sa.BigInteger, nullable=False),
)
compute_samples = sa.Table(
    "compute_samples",
    metadata,
    sa.Column("at_ms", sa.BigInteger, primary_key=True),
    sa.Column("project_id", ID, sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("gpus", sa.Float, nullable=False),
    sa.Column("cpus", sa.Float, nullable=False),
    sa.Column("share", sa.Float, nullable=False),
    sa.Column("usage", sa.Float, nullable=False),
    sa.Column("queued", sa.Integer, nullable=False),
)
# one row: the queue's change counter (agents wake on it) and when the scheduler last ran
compute_state = sa.Table(
    "compute_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("scheduled_version", sa.BigInteger, nullable=False),
    sa.Column("scheduled_ms", sa.BigInteger, nullable=False),
    sa.Column("sampled_ms", sa.BigInteger, nullable=False),
)


# -- tune ---------------------------------------------------------------------------------
#: The values of ``tune_trials.state`` (Optuna's trial states, lower case).
TRIAL_STATES = ("running", "complete", "pruned", "fail", "waiting")

# hyperparameter studies: Optuna's integer ids (its storage API needs them; the public names
# are the project and the study's name), the run that parents the trials' runs, directions
# and attributes as JSON, and the next trial number
tune_studies = sa.Table(
    "tune_studies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", ID, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("directions", sa.Text, nullable=False),  # JSON list
    sa.Column("user_attrs", sa.Text, nullable=False),  # JSON
    sa.Column("system_attrs", sa.Text, nullable=False),  # JSON
    sa.Column("next_number", sa.Integer, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("project_id", "name"),
    # ids are never reused (processes cache a study's and its trials' ids), on SQLite too
    sqlite_autoincrement=True,
)

# one row per trial; each trial is also a run (params, values and intermediate values are
# written to the run in the same commit, so trials are searchable like any run)
tune_trials = sa.Table(
    "tune_trials",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "study_id", sa.Integer, sa.ForeignKey("tune_studies.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("values_json", sa.Text, nullable=True),  # JSON list; inf as text
    sa.Column("start_ms", sa.BigInteger, nullable=True),
    sa.Column("complete_ms", sa.BigInteger, nullable=True),
    sa.Column("heartbeat_ms", sa.BigInteger, nullable=True),
    sa.Column("params", sa.Text, nullable=False),  # JSON {name: [internal, distribution, external]}
    sa.Column("intermediate", sa.Text, nullable=False),  # JSON [[step, value], ...]
    sa.Column("user_attrs", sa.Text, nullable=False),  # JSON
    sa.Column("system_attrs", sa.Text, nullable=False),  # JSON
    sa.UniqueConstraint("study_id", "number"),
    sa.Index(None, "study_id", "id"),  # what a process has not seen yet: id > its last
    sa.Index(None, "study_id", "state"),  # running trials of a study (stale ones among them)
    sa.Index(None, "run_id"),
    sqlite_autoincrement=True,
)


def select_named(table: sa.Table) -> sa.Select[Any]:
    """A models or datasets row (id, name, description, created_ms) with its project's name."""
    c, p = table.c, projects.c
    return sa.select(c.id, c.name, c.description, c.created_ms, p.name.label("project")).join(
        projects, p.id == c.project_id
    )
