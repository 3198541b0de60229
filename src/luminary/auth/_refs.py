"""What the guard asks the database about objects that point at other objects: the project of
each dataset version named by id (a run's inputs), and which projects refer to a blob.

Plain functions over an engine, so that :class:`~luminary.auth._sql.SqlAuth` stays about users
and tokens. Every query is read-only.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import sqlalchemy as sa

from luminary.store import _schema as t
from luminary.store._engine import read_tx

__all__ = ["blob_referenced", "copy_manifests", "dataset_version_projects"]


def dataset_version_projects(engine: sa.Engine, ids: Sequence[str]) -> dict[str, str]:
    """``{version id: project id}`` of the dataset versions among ``ids`` that exist."""
    wanted = [i for i in dict.fromkeys(ids) if isinstance(i, str)]
    if not wanted:
        return {}
    v, d = t.dataset_versions.c, t.datasets.c
    with read_tx(engine) as conn:
        rows = conn.execute(
            sa.select(v.id, d.project_id)
            .join(t.datasets, d.id == v.dataset_id)
            .where(v.id.in_(wanted))
        ).all()
    return {str(r.id): str(r.project_id) for r in rows}


def blob_referenced(engine: sa.Engine, digest: str, among: Collection[str]) -> bool:
    """Whether a run artifact, a model version, or a dataset version's manifest or schema in
    one of the projects ``among`` (ids) names the blob ``digest``."""
    if not among:
        return False
    projects = list(among)
    a, r = t.artifacts.c, t.runs.c
    mv, m = t.model_versions.c, t.models.c
    dv, d = t.dataset_versions.c, t.datasets.c
    queries = [
        sa.select(a.run_id)
        .join(t.runs, r.id == a.run_id)
        .where(a.digest == digest, r.project_id.in_(projects)),
        sa.select(mv.id)
        .join(t.models, m.id == mv.model_id)
        .where(mv.digest == digest, m.project_id.in_(projects)),
        sa.select(dv.id)
        .join(t.datasets, d.id == dv.dataset_id)
        .where(
            (dv.manifest_digest == digest) | (dv.schema_digest == digest),
            d.project_id.in_(projects),
        ),
    ]
    with read_tx(engine) as conn:
        return any(conn.execute(q.limit(1)).first() is not None for q in queries)


def copy_manifests(engine: sa.Engine, among: Collection[str]) -> list[tuple[str, str]]:
    """``(version id, manifest digest)`` of the copy-mode dataset versions in the projects
    ``among``: their files are blobs, named only inside the manifest."""
    if not among:
        return []
    dv, d = t.dataset_versions.c, t.datasets.c
    with read_tx(engine) as conn:
        rows = conn.execute(
            sa.select(dv.id, dv.manifest_digest)
            .join(t.datasets, d.id == dv.dataset_id)
            .where(dv.mode == "copy")
            .where(d.project_id.in_(list(among)))
            .order_by(dv.id)
        ).all()
    return [(str(row.id), str(row.manifest_digest)) for row in rows]
