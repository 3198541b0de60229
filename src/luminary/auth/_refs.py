"""What the guard asks the database about objects that point at other objects: the project of
each dataset version named by id (a run's inputs), which projects refer to a blob, and who
uploaded a blob's bytes (the ``blob_uploads`` table: proof that they hold them).

Plain functions over an engine, so that :class:`~luminary.auth._sql.SqlAuth` stays about users
and tokens. Every query is read-only but :func:`record_upload`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

import sqlalchemy as sa

from luminary.storage import schema as t
from luminary.storage.engine import read_tx, write_tx

__all__ = [
    "copy_manifests",
    "dataset_version_projects",
    "record_upload",
    "referenced_blobs",
    "uploaded_blobs",
]


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


def referenced_blobs(
    engine: sa.Engine, digests: Collection[str], among: Collection[str]
) -> set[str]:
    """Those of ``digests`` that a run artifact, a model version, or a dataset version's
    manifest or schema in one of the projects ``among`` (ids) names."""
    if not among or not digests:
        return set()
    projects = list(among)
    a, mv, dv = t.artifacts.c, t.model_versions.c, t.dataset_versions.c
    # (the column naming a blob, the table holding it, its join to a project's table)
    namers = [
        (a.digest, t.artifacts, t.runs, t.runs.c.id == a.run_id),
        (mv.digest, t.model_versions, t.models, t.models.c.id == mv.model_id),
        (dv.manifest_digest, t.dataset_versions, t.datasets, t.datasets.c.id == dv.dataset_id),
        (dv.schema_digest, t.dataset_versions, t.datasets, t.datasets.c.id == dv.dataset_id),
    ]
    found: set[str] = set()
    with read_tx(engine) as conn:
        for part in _parts(digests):
            for column, table, owner, on in namers:
                q = (
                    sa.select(column)
                    .select_from(table)
                    .join(owner, on)
                    .where(column.in_(part), owner.c.project_id.in_(projects))
                    .distinct()
                )
                found.update(str(x) for x in conn.execute(q).scalars())
    return found


def record_upload(engine: sa.Engine, digest: str, user: str, at_ms: int) -> None:
    """Note that ``user`` uploaded bytes that hash to ``digest`` (kept at the latest time)."""
    u, b = t.users.c, t.blob_uploads.c
    try:
        with write_tx(engine) as conn:
            user_id = conn.execute(sa.select(u.id).where(u.name == user)).scalar()
            if user_id is None:  # the server's own user when access control is off
                return
            mine = (b.digest == digest) & (b.user_id == user_id)
            if conn.execute(t.blob_uploads.update().where(mine).values(at_ms=at_ms)).rowcount:
                return
            row = {"digest": digest, "user_id": user_id, "at_ms": at_ms}
            conn.execute(t.blob_uploads.insert(), row)
    except sa.exc.IntegrityError:
        return  # the same user's concurrent upload recorded it first


def uploaded_blobs(engine: sa.Engine, digests: Collection[str], user: str) -> set[str]:
    """Those of ``digests`` whose bytes ``user`` has uploaded."""
    u, b = t.users.c, t.blob_uploads.c
    found: set[str] = set()
    with read_tx(engine) as conn:
        for part in _parts(digests):
            q = (
                sa.select(b.digest)
                .join(t.users, u.id == b.user_id)
                .where(u.name == user, b.digest.in_(part))
            )
            found.update(str(x) for x in conn.execute(q).scalars())
    return found


def _parts(items: Collection[str], n: int = 500) -> Iterator[list[str]]:
    """``items`` (deduplicated) in lists of at most ``n``: bound parameters stay few."""
    unique = [i for i in dict.fromkeys(items) if isinstance(i, str)]
    for i in range(0, len(unique), n):
        yield unique[i : i + n]


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
