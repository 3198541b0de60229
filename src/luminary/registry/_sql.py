"""The registry on SQL: its part of :class:`luminary.store.SqlStore`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from luminary._bounds import INT32_MAX, check_int
from luminary._clock import now_ms, utc
from luminary._ids import new_id
from luminary.errors import AlreadyExistsError, InvalidStateError, NotFoundError, nearest
from luminary.registry._base import RegistryStore
from luminary.registry.models import (
    AliasMove,
    Event,
    Model,
    ModelRef,
    ModelVersion,
    check_alias,
    check_name,
    parse_ref,
)
from luminary.storage import schema as t
from luminary.storage.engine import missing_version, next_version, read_tx, write_tx
from luminary.storage.events import insert_event

if TYPE_CHECKING:
    from luminary.tracking import SqlTracking

__all__ = ["SqlRegistry"]

_RETRIES = 5


class SqlRegistry(RegistryStore):
    """Models, versions, aliases and events on SQLAlchemy. Projects and runs are ``runs``'s: a
    version's project is created on first use and its source run resolved from a prefix."""

    def __init__(self, engine: sa.Engine, runs: SqlTracking) -> None:
        self.engine = engine
        self._runs = runs

    # -- models ----------------------------------------------------------------------------
    def create_model(self, name: str, project: str, description: str = "") -> Model:
        check_name("model", name)
        proj = self._runs.ensure_project(project)
        row: dict[str, Any] = {
            "id": new_id(),
            "project_id": proj.id,
            "name": name,
            "description": description,
            "created_ms": now_ms(),
        }
        try:
            with write_tx(self.engine) as conn:
                conn.execute(t.models.insert(), row)
        except sa.exc.IntegrityError as exc:
            msg = f"model {name!r} already exists; register a new version of it instead"
            raise AlreadyExistsError(msg) from exc
        return Model(row["id"], name, proj.name, description, utc(row["created_ms"]))

    def get_model(self, name: str) -> Model:
        with read_tx(self.engine) as conn:
            row = self._model_row(conn, name)
            return self._model(conn, row)

    def list_models(self, project: str | None = None) -> list[Model]:
        m, p = t.models.c, t.projects.c
        stmt = t.select_named(t.models).order_by(m.name)
        if project is not None:
            stmt = stmt.where(p.name == project)
        with read_tx(self.engine) as conn:
            return [self._model(conn, row) for row in conn.execute(stmt)]

    def delete_model(self, name: str, actor: str) -> None:
        with write_tx(self.engine) as conn:
            row = self._model_row(conn, name, lock=True)
            for table in (t.model_aliases, t.alias_history):
                conn.execute(table.delete().where(table.c.model_id == row.id))
            conn.execute(t.model_versions.delete().where(t.model_versions.c.model_id == row.id))
            conn.execute(t.models.delete().where(t.models.c.id == row.id))
            insert_event(conn, "model.deleted", name, {}, actor)

    # -- versions --------------------------------------------------------------------------
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
        check_name("model", name)
        check_int("size", size, low=0)
        proj = self._runs.ensure_project(project)
        for attempt in range(_RETRIES):
            try:
                with write_tx(self.engine) as conn:
                    model_id = self._model_id_for_write(conn, name, proj.id)
                    run_id = metrics = None
                    if source_run_id is not None:
                        run_id = self._runs.resolve_run_id(conn, source_run_id)
                        metrics = self._run_metrics(conn, run_id)
                    parent_id = None
                    if parent is not None:
                        parent_id = self._version_row(conn, parent).id
                    mv = t.model_versions.c
                    number = next_version(conn, mv.version, mv.model_id, model_id)
                    row = {
                        "id": new_id(),
                        "model_id": model_id,
                        "version": number,
                        "digest": digest,
                        "size": size,
                        "format": format,
                        "filename": filename,
                        "signature": json.dumps(signature),
                        "metadata": json.dumps(metadata, default=str),
                        "source_run_id": run_id,
                        "metrics": json.dumps(metrics or {}),
                        "parent_id": parent_id,
                        "description": description,
                        "created_ms": now_ms(),
                        "created_by": actor,
                    }
                    conn.execute(t.model_versions.insert(), row)
                    insert_event(
                        conn,
                        "model.registered",
                        f"{name}@{number}",
                        {
                            "model": name,
                            "version": number,
                            "digest": digest,
                            "run_id": run_id,
                            "format": format,
                        },
                        actor,
                    )
                break
            except sa.exc.IntegrityError:
                if attempt == _RETRIES - 1:
                    raise
        return self.get_model_version(ModelRef(name, version=number))

    def get_model_version(self, ref: str | ModelRef) -> ModelVersion:
        with read_tx(self.engine) as conn:
            return self._versions(conn, [self._version_row(conn, ref)])[0]

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        v = t.model_versions.c
        with read_tx(self.engine) as conn:
            model = self._model_row(conn, name)
            rows = conn.execute(
                sa.select(t.model_versions).where(v.model_id == model.id).order_by(v.version)
            ).all()
            return self._versions(conn, rows)

    def delete_model_version(self, ref: str | ModelRef, actor: str) -> None:
        with write_tx(self.engine) as conn:
            row = self._version_row(conn, ref)
            aliases = (
                conn.execute(
                    sa.select(t.model_aliases.c.alias).where(t.model_aliases.c.version_id == row.id)
                )
                .scalars()
                .all()
            )
            name = self._model_name(conn, row.model_id)
            if aliases:
                msg = (
                    f"{name}@{row.version} is what {', '.join(sorted(aliases))} point(s) to; "
                    f"move or unset those aliases first (luminary models alias unset {name} "
                    f"{sorted(aliases)[0]})"
                )
                raise InvalidStateError(msg)
            conn.execute(
                t.model_versions.update()
                .where(t.model_versions.c.parent_id == row.id)
                .values(parent_id=None)
            )
            conn.execute(t.model_versions.delete().where(t.model_versions.c.id == row.id))
            insert_event(conn, "model.deleted", f"{name}@{row.version}", {}, actor)

    # -- aliases ---------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int, actor: str) -> AliasMove:
        check_alias(alias)
        check_int("version", version, low=1, high=INT32_MAX)
        with write_tx(self.engine) as conn:
            model = self._model_row(conn, name, lock=True)
            target = self._version_row(conn, ModelRef(name, version=version))
            current = self._alias_version(conn, model.id, alias)
            a = t.model_aliases.c
            conn.execute(
                t.model_aliases.delete().where(a.model_id == model.id).where(a.alias == alias)
            )
            conn.execute(
                t.model_aliases.insert(),
                {"model_id": model.id, "alias": alias, "version_id": target.id},
            )
            move = self._record_move(conn, model.id, name, alias, current, version, actor)
            insert_event(
                conn,
                "alias.set",
                f"{name}@{alias}",
                {"model": name, "alias": alias, "from_version": current, "to_version": version},
                actor,
            )
        return move

    def unset_alias(self, name: str, alias: str, actor: str) -> AliasMove:
        check_alias(alias)
        with write_tx(self.engine) as conn:
            model = self._model_row(conn, name, lock=True)
            current = self._alias_version(conn, model.id, alias)
            if current is None:
                have = self._aliases(conn, model.id)
                msg = f"model {name!r} has no alias {alias!r}; {nearest(alias, have, 'alias')}"
                raise NotFoundError(msg)
            a = t.model_aliases.c
            conn.execute(
                t.model_aliases.delete().where(a.model_id == model.id).where(a.alias == alias)
            )
            move = self._record_move(conn, model.id, name, alias, current, None, actor)
            insert_event(
                conn,
                "alias.unset",
                f"{name}@{alias}",
                {"model": name, "alias": alias, "from_version": current, "to_version": None},
                actor,
            )
        return move

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        h = t.alias_history.c
        with read_tx(self.engine) as conn:
            model = self._model_row(conn, name)
            stmt = sa.select(t.alias_history).where(h.model_id == model.id).order_by(h.seq)
            if alias is not None:
                stmt = stmt.where(h.alias == alias)
            return [
                AliasMove(name, r.alias, r.from_version, r.to_version, r.actor, utc(r.at_ms))
                for r in conn.execute(stmt)
            ]

    def _record_move(
        self,
        conn: sa.Connection,
        model_id: str,
        name: str,
        alias: str,
        old: int | None,
        new: int | None,
        actor: str,
    ) -> AliasMove:
        at = now_ms()
        conn.execute(
            t.alias_history.insert(),
            {
                "model_id": model_id,
                "alias": alias,
                "from_version": old,
                "to_version": new,
                "actor": actor,
                "at_ms": at,
            },
        )
        return AliasMove(name, alias, old, new, actor, utc(at))

    # -- events and lineage ----------------------------------------------------------------
    def list_events(
        self, after: int = 0, limit: int = 100, kinds: Sequence[str] | None = None
    ) -> list[Event]:
        check_int("after", after)
        check_int("limit", limit, low=0)
        e = t.events.c
        stmt = sa.select(t.events).where(e.seq > after).order_by(e.seq).limit(limit)
        if kinds:
            stmt = stmt.where(e.kind.in_(list(kinds)))
        with read_tx(self.engine) as conn:
            return [
                Event(r.seq, r.kind, r.subject, json.loads(r.payload), r.actor, utc(r.at_ms))
                for r in conn.execute(stmt)
            ]

    def versions_from_run(self, run_id: str) -> list[ModelVersion]:
        v = t.model_versions.c
        with read_tx(self.engine) as conn:
            run_id = self._runs.resolve_run_id(conn, run_id)
            rows = conn.execute(
                sa.select(t.model_versions).where(v.source_run_id == run_id).order_by(v.created_ms)
            ).all()
            return self._versions(conn, rows)

    def derived_versions(self, ref: str | ModelRef) -> list[ModelVersion]:
        v = t.model_versions.c
        with read_tx(self.engine) as conn:
            parent = self._version_row(conn, ref)
            rows = conn.execute(
                sa.select(t.model_versions).where(v.parent_id == parent.id).order_by(v.created_ms)
            ).all()
            return self._versions(conn, rows)

    # -- helpers ---------------------------------------------------------------------------
    def _model_row(self, conn: sa.Connection, name: str, *, lock: bool = False) -> Any:
        m = t.models.c
        stmt = t.select_named(t.models).where(m.name == name)
        if lock:
            stmt = stmt.with_for_update(of=t.models)
        row = conn.execute(stmt).first()
        if row is None:
            names = conn.execute(sa.select(m.name)).scalars().all()
            msg = f"no model {name!r}; {nearest(name, names, 'model')}"
            raise NotFoundError(msg)
        return row

    def _model_id_for_write(self, conn: sa.Connection, name: str, project_id: str) -> str:
        m = t.models.c
        found = conn.execute(sa.select(m.id).where(m.name == name).with_for_update()).scalar()
        if found is not None:
            return str(found)
        model_id = new_id()
        conn.execute(
            t.models.insert(),
            {
                "id": model_id,
                "project_id": project_id,
                "name": name,
                "description": "",
                "created_ms": now_ms(),
            },
        )
        return model_id

    def _model_name(self, conn: sa.Connection, model_id: str) -> str:
        return str(
            conn.execute(sa.select(t.models.c.name).where(t.models.c.id == model_id)).scalar_one()
        )

    def _model(self, conn: sa.Connection, row: Any) -> Model:
        v = t.model_versions.c
        latest = conn.execute(
            sa.select(sa.func.max(v.version)).where(v.model_id == row.id)
        ).scalar()
        return Model(
            row.id,
            row.name,
            row.project,
            row.description,
            utc(row.created_ms),
            latest,
            self._aliases(conn, row.id),
        )

    def _aliases(self, conn: sa.Connection, model_id: str) -> dict[str, int]:
        a, v = t.model_aliases.c, t.model_versions.c
        rows = conn.execute(
            sa.select(a.alias, v.version)
            .join(t.model_versions, v.id == a.version_id)
            .where(a.model_id == model_id)
            .order_by(a.alias)
        )
        return {r.alias: r.version for r in rows}

    def _alias_version(self, conn: sa.Connection, model_id: str, alias: str) -> int | None:
        a, v = t.model_aliases.c, t.model_versions.c
        found = conn.execute(
            sa.select(v.version)
            .join(t.model_versions, v.id == a.version_id)
            .where(a.model_id == model_id)
            .where(a.alias == alias)
        ).scalar()
        return None if found is None else int(found)

    def _version_row(self, conn: sa.Connection, ref: str | ModelRef) -> Any:
        r = parse_ref(ref) if isinstance(ref, str) else ref
        model = self._model_row(conn, r.name)
        v = t.model_versions.c
        stmt = sa.select(t.model_versions).where(v.model_id == model.id)
        if r.version is not None:
            stmt = stmt.where(v.version == r.version)
        elif r.alias is not None:
            a = t.model_aliases.c
            stmt = stmt.join(t.model_aliases, a.version_id == v.id).where(a.alias == r.alias)
        else:
            stmt = stmt.order_by(v.version.desc()).limit(1)
        row = conn.execute(stmt).first()
        if row is None:
            if r.alias is not None:
                have = self._aliases(conn, model.id)
                msg = (
                    f"model {r.name!r} has no alias {r.alias!r}; {nearest(r.alias, have, 'alias')}"
                )
                raise NotFoundError(msg)
            what = f"model {r.name!r}"
            raise missing_version(conn, v.version, v.model_id, model.id, what, r.version)
        return row

    def _run_metrics(self, conn: sa.Connection, run_id: str) -> dict[str, float | None]:
        m = t.metric_series.c
        rows = conn.execute(
            sa.select(m.key, m.last_value).where(m.run_id == run_id).where(m.last_step.is_not(None))
        )
        return {r.key: r.last_value for r in rows}

    def _versions(self, conn: sa.Connection, rows: Sequence[Any]) -> list[ModelVersion]:
        if not rows:
            return []
        v, a = t.model_versions.c, t.model_aliases.c
        ids = [r.id for r in rows]
        aliases: dict[str, list[str]] = {}
        for ar in conn.execute(
            sa.select(a.version_id, a.alias).where(a.version_id.in_(ids)).order_by(a.alias)
        ):
            aliases.setdefault(ar.version_id, []).append(ar.alias)
        names = {
            r.id: r.name
            for r in conn.execute(
                sa.select(t.models.c.id, t.models.c.name).where(
                    t.models.c.id.in_({r.model_id for r in rows})
                )
            )
        }
        parent_ids = {r.parent_id for r in rows if r.parent_id}
        parents = {}
        if parent_ids:
            for pr in conn.execute(
                sa.select(v.id, v.version, t.models.c.name)
                .join(t.models, t.models.c.id == v.model_id)
                .where(v.id.in_(parent_ids))
            ):
                parents[pr.id] = f"{pr.name}@{pr.version}"
        out = []
        for r in rows:
            metrics = {
                k: (float("nan") if x is None else x) for k, x in json.loads(r.metrics).items()
            }
            out.append(
                ModelVersion(
                    id=r.id,
                    model=names[r.model_id],
                    version=r.version,
                    digest=r.digest,
                    size=r.size,
                    format=r.format,
                    filename=r.filename,
                    signature=json.loads(r.signature),
                    metadata=json.loads(r.metadata),
                    source_run_id=r.source_run_id,
                    metrics=metrics,
                    parent=parents.get(r.parent_id) if r.parent_id else None,
                    description=r.description,
                    created_at=utc(r.created_ms),
                    created_by=r.created_by,
                    aliases=tuple(aliases.get(r.id, [])),
                )
            )
        return out
