"""Dataset values: datasets and their immutable versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = ["Dataset", "DatasetVersion", "missing_version_id"]

Mode = Literal["copy", "reference"]


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    project: str
    description: str
    created_at: datetime
    latest_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "project": self.project,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "latest_version": self.latest_version,
        }


@dataclass(frozen=True)
class DatasetVersion:
    """A manifest of files (relative path, size, BLAKE3), stored as a blob, plus its schemas.

    ``mode`` is ``copy`` (file contents are blobs in the store) or ``reference`` (files stay
    where they are, under ``root``: a local folder, ``s3://…`` or ``root://…``).
    """

    id: str
    dataset: str
    version: int
    mode: Mode
    root: str
    manifest_digest: str
    schema_digest: str | None
    file_count: int
    total_bytes: int
    message: str
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "id": self.id,
            "dataset": self.dataset,
            "version": self.version,
            "mode": self.mode,
            "root": self.root,
            "manifest_digest": self.manifest_digest,
            "schema_digest": self.schema_digest,
            "file_count": self.file_count,
            "total_bytes": self.total_bytes,
            "message": self.message,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


def missing_version_id(version_id: str, where: str = "") -> str:
    """The message for a dataset version id that names no version (``where``: what else may
    be wrong, e.g. the caller's role), with the fix when it is a ref rather than an id."""
    if "@" in version_id:
        hint = (
            f"; {version_id!r} is a ref (name@version), not an id: link the version's id, "
            f"e.g. store.get_dataset_version({version_id!r}).id"
        )
    else:
        hint = "; give the id of a dataset version (DatasetVersion.id)"
    return f"no dataset version with id {version_id!r}{where}{hint}"
