"""Names shared by every domain: project, model, dataset and user names, ``name@version``
references and the relative paths of artifacts and dataset files. Pure checks, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from luminary._bounds import INT32_MAX
from luminary.errors import InvalidArgumentError

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "ModelRef",
    "check_alias",
    "check_name",
    "check_relative_path",
    "parse_ref",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")


_NAME_EXAMPLES = {
    "project": "cms-btag",
    "model": "jet-tagger",
    "dataset": "jets",
    "user": "alice",
}


def check_name(kind: str, name: object) -> str:
    """A project, model or dataset name: 1-200 of letters, digits, '_', '.', '-'."""
    if not isinstance(name, str) or not _NAME.match(name):
        example = _NAME_EXAMPLES.get(kind, "jet-tagger")
        msg = (
            f"{kind} name {name!r} is not valid; use 1-200 characters from letters, digits, "
            f"'_', '.', '-', starting with a letter or digit (e.g. '{example}')"
        )
        raise InvalidArgumentError(msg)
    return name


def check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias == "latest":
        msg = (
            f"alias {alias!r} is not valid; an alias starts with a letter and has up to 64 "
            "letters, digits, '_' or '-' (e.g. 'production', 'staging'); 'latest' is reserved"
        )
        raise InvalidArgumentError(msg)
    return alias


@dataclass(frozen=True)
class ModelRef:
    """``name``, ``name@3``, ``name@production`` or ``name@latest``."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(text: object, kind: str = "model") -> ModelRef:
    """Parse ``name[@version|@alias]``; a bare name or ``@latest`` means the newest version."""
    if not isinstance(text, str):
        msg = f"{kind} reference {text!r} is not valid; write NAME, NAME@VERSION or NAME@ALIAS"
        raise InvalidArgumentError(msg)
    name, sep, tail = text.partition("@")
    check_name(kind, name)
    if not sep or tail == "latest":
        return ModelRef(name)
    if tail.isascii() and tail.isdigit():
        if len(tail) > 10 or not 1 <= int(tail) <= INT32_MAX:
            msg = (
                f"{kind} reference {text[:60]!r}: a version number is an integer from 1 to "
                f"{INT32_MAX}"
            )
            raise InvalidArgumentError(msg)
        return ModelRef(name, version=int(tail))
    try:
        return ModelRef(name, alias=check_alias(tail))
    except InvalidArgumentError:
        msg = (
            f"{kind} reference {text!r} is not valid; write NAME, NAME@VERSION (e.g. "
            f"{name}@3) or NAME@ALIAS (e.g. {name}@production)"
        )
        raise InvalidArgumentError(msg) from None


#: Longest artifact or dataset path, in UTF-8 bytes (PATH_MAX is 4096 on Linux).
MAX_PATH_BYTES = 1024
#: Longest path component, in UTF-8 bytes (NAME_MAX on Linux, macOS and Windows).
MAX_NAME_BYTES = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PATH_RULE = (
    "use a relative path of '/'-separated names without '.', '..', empty parts, backslashes or "
    f"control characters, each name at most {MAX_NAME_BYTES} bytes and the whole at most "
    f"{MAX_PATH_BYTES} bytes in UTF-8 (e.g. 'model/weights.npz')"
)


def check_relative_path(path: object) -> str:
    """An artifact name: relative, '/'-separated, no '..', no empty or hidden traversal, no
    control characters, and names that every file system can hold."""
    if not isinstance(path, str):
        msg = f"artifact path {path!r} of type {type(path).__name__} is not valid; {_PATH_RULE}"
        raise InvalidArgumentError(msg)
    parts = path.split("/")
    problem = None
    if not path or path.startswith("/") or "\\" in path:
        problem = "it is empty, absolute or holds a backslash"
    elif any(p in ("", ".", "..") for p in parts):
        problem = "it has an empty, '.' or '..' part"
    elif (bad := _CONTROL.search(path)) is not None:
        problem = f"it holds the control character {bad.group()!r}"
    else:
        try:
            encoded = [p.encode("utf-8") for p in parts]
        except UnicodeEncodeError:
            problem = "it is not valid Unicode (a file name that is not UTF-8?)"
        else:
            long = next((p for p in encoded if len(p) > MAX_NAME_BYTES), None)
            if long is not None:
                problem = f"a name in it is {len(long)} bytes long"
            elif len(path.encode("utf-8")) > MAX_PATH_BYTES:
                problem = f"it is {len(path.encode('utf-8'))} bytes long"
    if problem is not None:
        shown = repr(path) if len(path) <= 120 else repr(path[:100]) + "..."
        msg = f"artifact path {shown} is not valid: {problem}; {_PATH_RULE}"
        raise InvalidArgumentError(msg)
    return path
