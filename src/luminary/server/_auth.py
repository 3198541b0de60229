"""Access control: who is asking (a bearer token) and whether their role in the project of the
object addressed allows the request. Written once here; the routers only name what they need.

Rules (team mode, ``create_app(..., auth=True)``):

- Every ``/api/v1`` request carries ``Authorization: Bearer <token>``; without one, or with a
  malformed, unknown, wrong, expired or revoked token, the answer is ``401 unauthenticated``
  saying which (and ``WWW-Authenticate: Bearer``). ``/healthz``, ``/readyz`` and the OpenAPI
  document stay open.
- Reads need ``reader`` in the object's project, writes (logging, registering, deleting, alias
  moves) need ``writer``. Alias moves are ``writer`` rather than ``admin``: promoting a model
  is the team's everyday deployment step (often from CI with a writer token) and every move is
  recorded with its actor in the alias history and the event log. The actor is always the
  authenticated principal (the token's user; with access control off, the server's own user),
  never a value the request carries.
- Someone with no role in the project gets ``404`` with the same message as for an object that
  does not exist (``no run 'X', or you have no role in its project``), so names do not leak; a
  role too low for the action gets ``403``. A run id prefix that matches several runs answers
  ``400`` listing only the matches in projects the caller has a role in, and ``404`` when there
  are none. Server admins may do everything and get the store's
  own messages (with "did you mean" suggestions).
- Projects are created by server admins only (``POST /projects``; ``luminary tokens create
  --project P --role R`` also creates P). Starting a run, registering a model or adding a
  dataset version in a project needs ``writer`` there, so the project must already exist.
- Listings show only projects the user has a role in (projects, cross-project run search,
  models, datasets). The event log shows events whose model or dataset is in such a project;
  events about deleted models cannot be placed and are shown to server admins only.
- A blob's bytes are read only through an object the caller may read: a run artifact, model
  version, dataset manifest or schema, or a file of a copy-mode dataset version in a project
  they have a role in names its digest (:mod:`luminary.server._blob_reads`); knowing a digest
  is not enough. Naming a blob in a write (artifacts, model versions, dataset versions and the
  files of a copy-mode manifest) needs proof of possession: the caller may read the blob as
  above or uploaded its bytes themselves; otherwise ``400`` says to upload it. Asking whether a
  blob exists (``HEAD``, ``POST /uploads``) answers "yes" only to a caller who holds it, so
  another project's digest costs one upload to use and tells nothing. Uploading needs
  ``writer`` in some project.
- A link to another object (a run's dataset inputs, a run's parent, a model version's source
  run and parent) needs ``reader`` in the linked object's project, checked like a read of it.
- ``POST /runs/reap`` (touches every project) needs a server admin.

Tokens are checked through the store's :meth:`~luminary.auth._base.AuthStore.authenticate`;
the resulting principal is cached for :data:`CACHE_S` seconds keyed by the token's SHA-256, so
a batch of metrics does not cost a database read. Hence a revoked (or expired) token, or a
changed role, takes effect within :data:`CACHE_S` seconds, not instantly. The caches are timed
by the guard's ``clock`` (``time.monotonic`` unless a test drives another).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Request

from luminary._actor import current_actor
from luminary._ids import ambiguous_prefix
from luminary.auth import AuthStore
from luminary.auth.models import Principal, Role
from luminary.datasets.models import missing_version_id
from luminary.errors import (
    AmbiguousIdError,
    AuthenticationError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from luminary.registry.models import Event, parse_ref
from luminary.server._blob_reads import BlobReads
from luminary.store import Store

__all__ = ["CACHE_S", "Caller", "Guard", "Kind", "current_principal", "require"]

#: Seconds an authenticated token's principal is reused before the database is asked again.
CACHE_S = 5.0

Kind = Literal["project", "run", "model", "dataset"]
T = TypeVar("T")

_MAX_CACHED = 10_000
_WRITE_HINT = (
    "; a server admin creates projects and grants roles: "
    "luminary tokens create --user NAME --project PROJECT --role writer"
)


class Guard:
    """Authentication (cached) and the project checks behind :func:`require`; one per app."""

    def __init__(
        self,
        store: Store,
        *,
        enabled: bool,
        cache_s: float = CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.enabled = enabled
        self.cache_s = cache_s
        self.clock = clock
        # everyone, when access control is off: the server's own user (``LUMINARY_USER`` or
        # user@host), recorded as the actor of what they do
        self.local = Principal(current_actor(), is_admin=True)
        self._auth: AuthStore | None = store if isinstance(store, AuthStore) else None
        if enabled and self._auth is None:
            msg = (
                f"access control needs the server's own database (users and tokens), not "
                f"{store!r}; serve a SQL store, or turn access control off"
            )
            raise InvalidArgumentError(msg)
        self.blob_reads = (
            None
            if self._auth is None
            else BlobReads(store, self._auth, cache_s=cache_s, clock=clock)
        )
        self._lock = threading.Lock()
        self._principals: dict[str, tuple[float, Principal]] = {}
        self._project_ids: dict[str, str] = {}  # projects are never renamed
        self._run_projects: dict[str, str] = {}  # runs never change project

    # -- who is asking ---------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Principal:
        if not self.enabled:
            return self.local
        assert self._auth is not None
        if not authorization:
            msg = (
                "this server requires a token: set LUMINARY_TOKEN to one "
                "(a server admin creates it with `luminary tokens create`)"
            )
            raise AuthenticationError(msg)
        scheme, _, secret = authorization.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            msg = "the Authorization header is not valid; send `Authorization: Bearer <token>`"
            raise AuthenticationError(msg)
        key = hashlib.sha256(secret.encode()).hexdigest()
        now = self.clock()
        hit = self._principals.get(key)
        if hit is not None and now - hit[0] < self.cache_s:
            return hit[1]
        principal = self._auth.authenticate(secret)  # AuthenticationError says what is wrong
        with self._lock:
            if len(self._principals) >= _MAX_CACHED:
                self._principals = {
                    k: v for k, v in self._principals.items() if now - v[0] < self.cache_s
                }
            self._principals[key] = (now, principal)
        return principal

    # -- what they may do ------------------------------------------------------------------
    def check(self, principal: Principal, kind: Kind, name: str, role: Role) -> None:
        """Raise unless ``principal`` holds ``role`` in the project of the ``kind`` called
        ``name`` (a project name, run id, model name or ``name@ref``, dataset name or ref):
        ``NotFoundError`` when it is missing or they have no role there (the same message),
        ``PermissionDeniedError`` when their role is too low."""
        if principal.is_admin:
            return
        try:
            project = self.project_of(kind, name)
        except AmbiguousIdError as exc:
            raise self._ambiguous(principal, kind, name, role, exc) from None
        role_there = None if project is None else self._role(principal, project)
        if role_there is None:
            raise NotFoundError(_missing(kind, name, role))
        if not role_there.allows(role):
            msg = (
                f"{principal.user} is a {role_there.value} in project {project!r}; this needs "
                f"{role.value} (a project admin or server admin can grant it)"
            )
            raise PermissionDeniedError(msg)

    def _ambiguous(
        self, principal: Principal, kind: Kind, name: str, role: Role, exc: AmbiguousIdError
    ) -> NotFoundError | AmbiguousIdError:
        """An id prefix that matches several objects, as ``principal`` may learn of it: the
        matches in projects they have a role in, or the not-found answer when there are none
        (so a non-member cannot tell that the object exists)."""
        seen = [(i, p) for i, p in exc.candidates if self._role(principal, p) is not None]
        if not seen:
            return NotFoundError(_missing(kind, name, role))
        return ambiguous_prefix(kind, name, seen)

    def check_inputs(self, principal: Principal, version_ids: list[str]) -> None:
        """Linking dataset versions (by id) to a run: ``principal`` must be able to read each
        one; an unknown id and one in a project they have no role in answer the same 404."""
        if principal.is_admin or self._auth is None:
            return  # the store refuses unknown ids itself
        projects = self._auth.dataset_version_projects(version_ids)
        for vid in version_ids:
            project_id = projects.get(vid)
            if project_id is None or principal.role_in(project_id) is None:
                hidden = ", or you have no role in its project"
                raise NotFoundError(missing_version_id(vid, hidden))

    def check_admin(self, principal: Principal, action: str) -> None:
        if not principal.is_admin:
            msg = f"{action} is reserved for server admins"
            raise PermissionDeniedError(msg)

    def check_blob(self, principal: Principal, digest: str) -> None:
        """Reading a blob's bytes: some run, model or dataset that ``principal`` may read
        names it (:mod:`luminary.server._blob_reads`); ``NotFoundError`` otherwise."""
        if self.enabled and self.blob_reads is not None:
            self.blob_reads.check(principal, digest)

    def holds_blob(self, principal: Principal, digest: str) -> bool:
        """Whether ``principal`` holds ``digest`` (may read it, or uploaded it): only they are
        told that it exists (``HEAD``, ``POST /uploads``); anyone else uploads the bytes."""
        if not self.enabled or principal.is_admin or self.blob_reads is None:
            return True
        return bool(self.blob_reads.held(principal, (digest,)))

    def check_names_blobs(self, principal: Principal, what: str, digests: Iterable[str]) -> None:
        """A write that names blobs (``what`` names the field): ``principal`` must hold each
        one (:meth:`~luminary.server._blob_reads.BlobReads.check_held`); 400 otherwise."""
        if self.enabled and self.blob_reads is not None and not principal.is_admin:
            self.blob_reads.check_held(principal, what, list(dict.fromkeys(digests)))

    def check_dataset_blobs(
        self, principal: Principal, mode: str, manifest: str, schema: str | None
    ) -> None:
        """A dataset version names its manifest, its schema and, in copy mode, the files listed
        in the manifest: ``principal`` must hold each one."""
        if not self.enabled or self.blob_reads is None or principal.is_admin:
            return
        named = [manifest] if schema is None else [manifest, schema]
        self.check_names_blobs(principal, "the dataset version's manifest or schema", named)
        if mode == "copy":
            files = self.blob_reads.manifest_files(manifest)
            self.check_names_blobs(principal, f"copy-mode manifest {manifest}", files)

    def record_upload(self, principal: Principal, digest: str) -> None:
        """``principal`` uploaded bytes that hash to ``digest``: from now on they hold it."""
        if self.enabled and self._auth is not None:
            self._auth.record_upload(digest, principal.user)

    def check_uploader(self, principal: Principal) -> None:
        """Uploading a blob: writer in some project."""
        if principal.is_admin or any(r.allows(Role.WRITER) for r in principal.roles.values()):
            return
        msg = f"{principal.user} is not a writer in any project; uploads need one"
        raise PermissionDeniedError(msg)

    def visible(self, principal: Principal) -> set[str] | None:
        """Names of the projects ``principal`` has a role in (``None``: all of them)."""
        if principal.is_admin:
            return None
        return {p.name for p in self.store.list_projects() if principal.role_in(p.id) is not None}

    def only_visible(
        self, principal: Principal, items: Iterable[T], project: Callable[[T], str]
    ) -> list[T]:
        seen = self.visible(principal)
        return list(items) if seen is None else [x for x in items if project(x) in seen]

    def events(
        self, principal: Principal, after: int, limit: int, kinds: list[str] | None
    ) -> list[Event]:
        """Up to ``limit`` events after ``after`` that ``principal`` may see: pages through the
        log until enough are found, so a feed never stalls behind events it cannot show."""
        if principal.is_admin:
            return self.store.list_events(after, limit, kinds)
        seen = self.visible(principal) or set()
        where: dict[tuple[str, str], str | None] = {}
        found: list[Event] = []
        page = max(limit, 100)
        while len(found) < limit:
            batch = self.store.list_events(after, page, kinds)
            for event in batch:
                kind: Kind = "dataset" if event.kind.startswith("dataset") else "model"
                name = event.subject.partition("@")[0]
                if (kind, name) not in where:
                    where[kind, name] = self._project_or_none(kind, name)
                if where[kind, name] in seen:
                    found.append(event)
                    if len(found) == limit:
                        break
            if len(batch) < page:
                break
            after = batch[-1].seq
        return found

    # -- resolution ------------------------------------------------------------------------
    def project_of(self, kind: Kind, name: str) -> str | None:
        """The project name the object belongs to; ``None`` when it does not exist."""
        if kind == "project":
            return name if self._project_id(name) is not None else None
        return self._project_or_none(kind, name)

    def _project_or_none(self, kind: Kind, name: str) -> str | None:
        try:
            if kind == "run":
                cached = self._run_projects.get(name)
                if cached is not None:
                    return cached
                run = self.store.get_run(name)
                if run.id == name and len(self._run_projects) < _MAX_CACHED:
                    self._run_projects[name] = run.project
                return run.project
            if kind == "model":
                return self.store.get_model(parse_ref(name, "model").name).project
            if kind == "dataset":
                return self.store.get_dataset(parse_ref(name, "dataset").name).project
            return name
        except NotFoundError:
            return None

    def _project_id(self, name: str) -> str | None:
        found = self._project_ids.get(name)
        if found is None:
            try:
                found = self.store.get_project(name).id
            except NotFoundError:
                return None
            self._project_ids[name] = found
        return found

    def _role(self, principal: Principal, project: str) -> Role | None:
        project_id = self._project_id(project)
        return None if project_id is None else principal.role_in(project_id)


def _missing(kind: Kind, name: str, role: Role) -> str:
    where = "in it" if kind == "project" else "in its project"
    msg = f"no {kind} {name!r}, or you have no role {where}"
    return msg + _WRITE_HINT if kind == "project" and role is not Role.READER else msg


# -- FastAPI dependencies -------------------------------------------------------------------
def current_principal(request: Request) -> Principal:
    """Who the request acts as (401 when the token is missing or not usable)."""
    guard: Guard = request.app.state.guard
    principal = guard.authenticate(request.headers.get("authorization"))
    request.state.principal = principal  # for the access log
    return principal


#: An endpoint parameter holding the authenticated principal.
Caller = Annotated[Principal, Depends(current_principal)]


def require(role: Role, kind: Kind, param: str) -> Any:
    """A route dependency: the caller must hold ``role`` in the project of the ``kind`` named by
    the path parameter ``param`` (``dependencies=[require(Role.WRITER, "run", "run_id")]``)."""

    def dependency(request: Request, principal: Caller) -> Principal:
        guard: Guard = request.app.state.guard
        if guard.enabled:
            guard.check(principal, kind, request.path_params[param], role)
        return principal

    return Depends(dependency)
