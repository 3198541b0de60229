"""Datasets on SQL: the datasets' part of :class:`luminary.store.SqlStore`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from luminary._bounds import check_int
from luminary._clock import now_ms, utc
from luminary._ids import new_id
from luminary.datasets._base import DatasetStore
from luminary.datasets.models import Dataset, DatasetVersion, Mode, missing_version_id
from luminary.errors import InvalidArgumentError, NotFoundError, nearest
from luminary.names import ModelRef, check_name, parse_ref
from luminary.storage import schema as t
from luminary.storage.blobs import check_digest
from luminary.storage.engine import missing_version, next_version, read_tx, write_tx
from luminary.storage.events import insert_event

if TYPE_CHECKING:
    from luminary.tracking import SqlTracking

__all__ = ["SqlDatasets"]

_RETRIES = 5


class SqlDatasets(DatasetStore):
    """Datasets and their versions on SQLAlchemy. Projects and runs are ``runs``'s: a
    version's project is created on first use and its source run resolved from a prefix."""

    def __init__(self, engine: sa.Engine, runs: SqlTracking) -> None:
        self.engine = engine
        self._runs = runs

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
        check_name("dataset", name)
        if mode not in ("copy", "reference"):
            msg = f"dataset mode {mode!r} is not valid; use 'copy' or 'reference'"
            raise InvalidArgumentError(msg)
        check_digest(manifest_digest)
        check_int("file_count", file_count, low=0)
        check_int("total_bytes", total_bytes, low=0)
        if schema_digest is not None:
            check_digest(schema_digest)
        proj = self._runs.ensure_project(project)
        d, v = t.datasets.c, t.dataset_versions.c
        for attempt in range(_RETRIES):
            try:
                with write_tx(self.engine) as conn:
                    dataset_id = conn.execute(
                        sa.select(d.id).where(d.name == name).with_for_update()
                    ).scalar()
                    if dataset_id is None:
                        dataset_id = new_id()
                        conn.execute(
                            t.datasets.insert(),
                            {
                                "id": dataset_id,
                                "project_id": proj.id,
                                "name": name,
                                "description": "",
                                "created_ms": now_ms(),
                            },
                        )
                    number = next_version(conn, v.version, v.dataset_id, dataset_id)
                    row = {
                        "id": new_id(),
                        "dataset_id": dataset_id,
                        "version": number,
                        "mode": mode,
                        "root": root,
                        "manifest_digest": manifest_digest,
                        "schema_digest": schema_digest,
                        "file_count": file_count,
                        "total_bytes": total_bytes,
                        "message": message,
                        "created_ms": now_ms(),
                        "created_by": actor,
                    }
                    conn.execute(t.dataset_versions.insert(), row)
                    insert_event(
                        conn,
                        "dataset.version",
                        f"{name}@{number}",
                        {
                            "dataset": name,
                            "version": number,
                            "files": file_count,
                            "bytes": total_bytes,
                            "mode": mode,
                        },
                        actor,
                    )
                break
            except sa.exc.IntegrityError:
                if attempt == _RETRIES - 1:
                    raise
        return _version(row, name)

    def get_dataset(self, name: str) -> Dataset:
        with read_tx(self.engine) as conn:
            return self._dataset(conn, self._dataset_row(conn, name))

    def list_datasets(self, project: str | None = None) -> list[Dataset]:
        d, p = t.datasets.c, t.projects.c
        stmt = t.select_named(t.datasets).order_by(d.name)
        if project is not None:
            stmt = stmt.where(p.name == project)
        with read_tx(self.engine) as conn:
            return [self._dataset(conn, r) for r in conn.execute(stmt)]

    def get_dataset_version(self, ref: str | ModelRef) -> DatasetVersion:
        r = parse_ref(ref, "dataset") if isinstance(ref, str) else ref
        if r.alias is not None:
            msg = f"dataset reference {r}: datasets have versions, not aliases; write {r.name}@N"
            raise InvalidArgumentError(msg)
        v = t.dataset_versions.c
        with read_tx(self.engine) as conn:
            ds = self._dataset_row(conn, r.name)
            stmt = sa.select(t.dataset_versions).where(v.dataset_id == ds.id)
            if r.version is not None:
                stmt = stmt.where(v.version == r.version)
            else:
                stmt = stmt.order_by(v.version.desc()).limit(1)
            row = conn.execute(stmt).first()
            if row is None:
                what = f"dataset {r.name!r}"
                raise missing_version(conn, v.version, v.dataset_id, ds.id, what, r.version)
        return _version(row._mapping, r.name)

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        v = t.dataset_versions.c
        with read_tx(self.engine) as conn:
            ds = self._dataset_row(conn, name)
            rows = conn.execute(
                sa.select(t.dataset_versions).where(v.dataset_id == ds.id).order_by(v.version)
            ).all()
        return [_version(r._mapping, name) for r in rows]

    def add_run_inputs(self, run_id: str, version_ids: Sequence[str]) -> None:
        with write_tx(self.engine) as conn:
            run_id = self._runs.resolve_run_id(conn, run_id)
            ri, v = t.run_inputs.c, t.dataset_versions.c
            wanted = list(dict.fromkeys(version_ids))
            known = set(conn.execute(sa.select(v.id).where(v.id.in_(wanted))).scalars())
            for vid in wanted:
                if vid not in known:
                    raise NotFoundError(missing_version_id(str(vid)))
            have = set(
                conn.execute(sa.select(ri.dataset_version_id).where(ri.run_id == run_id)).scalars()
            )
            new = [vid for vid in dict.fromkeys(version_ids) if vid not in have]
            if new:
                conn.execute(
                    t.run_inputs.insert(),
                    [{"run_id": run_id, "dataset_version_id": vid} for vid in new],
                )

    def run_inputs(self, run_id: str) -> list[DatasetVersion]:
        v, d, ri = t.dataset_versions.c, t.datasets.c, t.run_inputs.c
        with read_tx(self.engine) as conn:
            run_id = self._runs.resolve_run_id(conn, run_id)
            rows = conn.execute(
                sa.select(t.dataset_versions, d.name.label("dataset_name"))
                .join(t.run_inputs, ri.dataset_version_id == v.id)
                .join(t.datasets, d.id == v.dataset_id)
                .where(ri.run_id == run_id)
                .order_by(d.name, v.version)
            ).all()
        return [_version(r._mapping, r.dataset_name) for r in rows]

    def runs_using(self, ref: str | ModelRef) -> list[str]:
        version = self.get_dataset_version(ref)
        ri = t.run_inputs.c
        with read_tx(self.engine) as conn:
            return list(
                conn.execute(
                    sa.select(ri.run_id)
                    .where(ri.dataset_version_id == version.id)
                    .order_by(ri.run_id)
                ).scalars()
            )

    def _dataset_row(self, conn: sa.Connection, name: str) -> Any:
        d = t.datasets.c
        row = conn.execute(t.select_named(t.datasets).where(d.name == name)).first()
        if row is None:
            names = conn.execute(sa.select(d.name)).scalars().all()
            msg = f"no dataset {name!r}; {nearest(name, names, 'dataset')}"
            raise NotFoundError(msg)
        return row

    def _dataset(self, conn: sa.Connection, row: Any) -> Dataset:
        v = t.dataset_versions.c
        latest = conn.execute(
            sa.select(sa.func.max(v.version)).where(v.dataset_id == row.id)
        ).scalar()
        return Dataset(row.id, row.name, row.project, row.description, utc(row.created_ms), latest)


def _version(row: Any, name: str) -> DatasetVersion:
    return DatasetVersion(
        id=row["id"],
        dataset=name,
        version=row["version"],
        mode=row["mode"],
        root=row["root"],
        manifest_digest=row["manifest_digest"],
        schema_digest=row["schema_digest"],
        file_count=row["file_count"],
        total_bytes=row["total_bytes"],
        message=row["message"],
        created_at=utc(row["created_ms"]),
        created_by=row["created_by"],
    )
