"""The walk: resolve a dataset's sources and list their files, local and remote, in manifest order.

:func:`plan_sources` checks and names the sources (local folders or files, or fsspec URLs such as
``s3://…`` and ``root://…``); :func:`walk` yields an :class:`Item` per file, with its manifest
path, where its bytes are, its size and the rest of its :data:`~._hashcache.CacheKey`, already
in :func:`~._manifest.sort_key` order. Nothing here opens a file.

Naming: one source folder gives paths relative to it; one source file gives its base name;
several sources put each under its own base name (two with the same base name are an error).

The local walk (``os.scandir``):

- recurses lazily, one sorted folder listing at a time, so memory grows with the largest folder
  and the depth, not with the number of files;
- includes hidden files and folders;
- follows symbolic links to files (the target's bytes are recorded under the link's name), and
  raises :class:`~luminary.errors.InvalidStateError` for a dangling one (a file the dataset
  names but cannot have);
- skips symbolic links to folders met inside the walk (they can form cycles and pull in trees
  from elsewhere; give such a folder as a source of its own), but follows a source that is itself
  a link;
- skips FIFOs, sockets and devices, which are not data (reading a FIFO would block).

Remote sources are listed with ``fs.find(path, detail=True)`` (one listing, held in memory and
sorted). Their cache key is ``(url, size, mtime_ns, etag_hash)``: the modification time from the
listing (``mtime``, ``LastModified``, …; 0 when there is none) and, in place of the inode, a
63-bit hash of the ETag (0 when there is none), so an object store that gives only an ETag still
gets a usable key. A remote file with neither is not cacheable.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from luminary._optional import missing_driver
from luminary.datasets._hashcache import CacheKey
from luminary.datasets._manifest import check_entry_path
from luminary.errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)

__all__ = ["Item", "Source", "is_remote", "local_path", "plan_sources", "walk"]


@dataclass(slots=True)
class Item:
    """One file of the walk: its manifest path, where its bytes are, and its cache key's parts."""

    path: str  # manifest path
    source: str  # absolute local path or URL
    size: int
    mtime_ns: int
    inode: int  # inode, or the ETag hash of a remote file
    fs: Any = None  # fsspec file system of a remote file, None for a local one
    fs_path: str = ""
    cacheable: bool = True

    @property
    def key(self) -> CacheKey:
        return (self.source, self.size, self.mtime_ns, self.inode)


@dataclass(frozen=True, slots=True)
class Source:
    """A checked source: its manifest name, where it is, and whether it is a folder."""

    name: str  # manifest name of the source (its base name)
    location: str  # absolute local path, or the path inside ``fs``
    is_dir: bool
    fs: Any = None


_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*(?:::[A-Za-z][A-Za-z0-9+.\-]*)*)://")


def is_remote(source: str) -> bool:
    """A URL of an fsspec file system other than the local one (``s3://``, ``root://``, …)."""
    m = _URL.match(source)
    return m is not None and m.group(1).lower() not in ("file", "local")


def local_path(source: str | os.PathLike[str]) -> str:
    """The absolute local path of a path or ``file://`` / ``local://`` URL."""
    text = os.fspath(source)
    for prefix in ("file://", "local://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return os.path.abspath(text)


def _resolve(source: str | os.PathLike[str]) -> Source:
    text = os.fspath(source)
    if is_remote(text):
        import fsspec.core

        try:
            fs, root = fsspec.core.url_to_fs(text)
            fs.invalidate_cache()  # fsspec shares instances: see the store as it is now
            info = fs.info(root)
        except FileNotFoundError:
            msg = f"source {text!r} does not exist; check the URL"
            raise NotFoundError(msg) from None
        except ImportError as exc:
            raise missing_driver(text, f"The source {text!r}", exc) from exc
        except (OSError, ValueError) as exc:
            msg = f"source {text!r} cannot be read ({exc}); check the URL and credentials"
            raise BackendUnavailableError(msg) from exc
        root = root.rstrip("/") or root
        return Source(root.rsplit("/", 1)[-1], root, info.get("type") == "directory", fs)
    path = local_path(text)
    try:
        st = os.stat(path)  # a source given as a link is followed
    except FileNotFoundError:
        msg = f"source {text!r} does not exist (looked for {path})"
        raise NotFoundError(msg) from None
    except OSError as exc:
        msg = f"source {text!r} cannot be read: {exc.strerror or exc}"
        raise InvalidStateError(msg) from exc
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        msg = f"source {text!r} is neither a folder nor a regular file"
        raise InvalidArgumentError(msg)
    return Source(os.path.basename(path), path, stat.S_ISDIR(st.st_mode))


def plan_sources(sources: Sequence[str | os.PathLike[str]]) -> tuple[list[Source], bool]:
    """The resolved sources in manifest order, and whether they are named by base name."""
    if isinstance(sources, (str, os.PathLike)) or not sources:
        msg = f"sources={sources!r} is not valid; give a list of one or more paths or URLs"
        raise InvalidArgumentError(msg)
    resolved = [_resolve(s) for s in sources]
    if len(resolved) == 1:
        only = resolved[0]
        if not only.is_dir:
            _check_name(only)
        return resolved, False
    seen: dict[str, Source] = {}
    for src in resolved:
        _check_name(src)
        if src.name in seen:
            msg = (
                f"two sources would both be named {src.name!r} in the dataset "
                f"({seen[src.name].location} and {src.location}); several sources are each "
                "stored under their base name: rename one, or add their common parent folder"
            )
            raise InvalidArgumentError(msg)
        seen[src.name] = src
    return sorted(resolved, key=lambda s: s.name), True


def _check_name(src: Source) -> None:
    if not src.name or src.name in (".", ".."):
        msg = (
            f"source {src.location!r} has no base name to store it under; give a folder "
            "below it, or add it as the only source"
        )
        raise InvalidArgumentError(msg)
    check_entry_path(src.name)


def walk(plan: list[Source], named: bool) -> Iterator[Item]:
    """Every file of the sources of :func:`plan_sources`, in manifest order."""
    for src in plan:
        prefix = f"{src.name}/" if named else ""  # for a folder; a file is named src.name
        if src.fs is not None:
            yield from _walk_remote(src, prefix)
        elif src.is_dir:
            yield from _walk_local(src.location, prefix)
        else:
            st = _stat(src.location, follow=True)
            yield _local_item(src.name, src.location, st)


def _stat(path: str, *, follow: bool) -> os.stat_result:
    try:
        return os.stat(path, follow_symlinks=follow)
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or exc}"
        raise InvalidStateError(msg) from exc


def _local_item(rel: str, path: str, st: os.stat_result) -> Item:
    check_entry_path(rel)
    return Item(rel, path, st.st_size, st.st_mtime_ns, st.st_ino)


def _walk_local(folder: str, prefix: str) -> Iterator[Item]:
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        msg = f"cannot list the folder {folder}: {exc.strerror or exc}"
        raise InvalidStateError(msg) from exc
    for entry in entries:
        rel = prefix + entry.name
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk_local(entry.path, rel + "/")
                continue
            link = entry.is_symlink()
            st = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            if entry.is_symlink():
                msg = (
                    f"{entry.path} is a symbolic link to {os.readlink(entry.path)!r}, which does "
                    "not exist; fix or remove the link"
                )
                raise InvalidStateError(msg) from None
            continue  # removed while we walk: it is not part of the dataset
        except OSError as exc:
            msg = f"cannot read {entry.path}: {exc.strerror or exc}"
            raise InvalidStateError(msg) from exc
        if stat.S_ISREG(st.st_mode):
            yield _local_item(rel, entry.path, st)
        elif link and stat.S_ISDIR(st.st_mode):
            continue  # links to folders are not followed (see the module doc)
        # FIFOs, sockets and devices are not data: skipped


def _walk_remote(src: Source, prefix: str) -> Iterator[Item]:
    fs = src.fs
    try:
        if src.is_dir:
            found: dict[str, dict[str, Any]] = fs.find(src.location, detail=True)
        else:
            found = {src.location: fs.info(src.location)}
    except (OSError, ValueError) as exc:
        msg = f"cannot list {fs.unstrip_protocol(src.location)} ({exc})"
        raise BackendUnavailableError(msg) from exc
    base = src.location.rstrip("/") + "/"
    rows: list[tuple[tuple[str, ...], str, str, dict[str, Any]]] = []
    for name, info in found.items():
        if info.get("type", "file") != "file":
            continue
        if src.is_dir:
            name = name.rstrip("/")
            rel = name[len(base) :] if name.startswith(base) else name.rsplit("/", 1)[-1]
            rel = prefix + rel
        else:
            rel = src.name
        check_entry_path(rel)
        rows.append((tuple(rel.split("/")), rel, name, info))
    rows.sort(key=lambda r: r[0])
    for _, rel, name, info in rows:
        mtime_ns, tag = _remote_stamp(info)
        size = info.get("size")
        yield Item(
            rel,
            fs.unstrip_protocol(name),
            int(size) if size is not None else int(fs.size(name)),
            mtime_ns,
            tag,
            fs=fs,
            fs_path=name,
            cacheable=bool(mtime_ns or tag),
        )


_MTIME_FIELDS = ("mtime", "LastModified", "last_modified", "modified", "updated", "mtime_ns")
_ETAG_FIELDS = ("ETag", "etag", "e_tag", "md5Hash", "checksum")


def _remote_stamp(info: dict[str, Any]) -> tuple[int, int]:
    """(mtime in ns or 0, 63-bit hash of the ETag or 0) from an fsspec info dict."""
    mtime_ns = 0
    for field in _MTIME_FIELDS:
        value = info.get(field)
        if value is None:
            continue
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
        if isinstance(value, datetime):
            mtime_ns = int(value.timestamp() * 1_000_000_000)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            mtime_ns = int(value) if field == "mtime_ns" else int(value * 1_000_000_000)
        else:
            continue
        break
    tag = 0
    for field in _ETAG_FIELDS:
        value = info.get(field)
        if value:
            import blake3

            digest = blake3.blake3(str(value).encode()).digest(8)
            tag = (int.from_bytes(digest, "big") >> 1) or 1
            break
    return int(mtime_ns), tag
