"""Where files live: a local folder or object storage (``s3://bucket/prefix``).

One place turns a location and the ``[data] storage_options`` into what each library needs: a
pyarrow filesystem (reading Parquet, listing and deleting files) and delta-rs storage options
(with conditional writes switched on, so a commit never overwrites another writer's). Keys and
secrets are not options: both libraries read ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
(or an instance role) from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PosixPath
from typing import Any

REMOTE_SCHEMES = ("s3://", "s3a://", "gs://", "az://", "abfss://")


def is_remote(location: str | Path) -> bool:
    """Whether ``location`` is an object-storage URI rather than a local path."""
    return str(location).startswith(REMOTE_SCHEMES) or isinstance(location, ObjectPath)


class ObjectPath(PosixPath):
    """An object-storage URI that reads like a :class:`~pathlib.Path` (``/``, ``parent``).

    ``str()`` gives the URI back (``s3://bucket/lake/sales/raw``); ``resolve()`` is itself.
    """

    def __str__(self) -> str:
        scheme, *rest = self.parts
        return f"{scheme}//{'/'.join(rest)}"

    def resolve(self, strict: bool = False) -> ObjectPath:
        return self


def location(value: str | Path) -> Path:
    """``value`` as a Path: an :class:`ObjectPath` for a URI, a local Path otherwise."""
    return ObjectPath(str(value)) if is_remote(value) else Path(value)


def delta_options(location: str | Path, storage_options: Mapping[str, str]) -> dict[str, str]:
    """delta-rs options for ``location``: the given ones plus safe concurrent commits.

    On S3-compatible storage, commits use conditional puts (``aws_conditional_put=etag``):
    a commit of a version another writer already committed fails instead of overwriting it,
    with no external lock service. A plain-HTTP endpoint (a local test server) is allowed.
    """
    if not is_remote(location):
        return {}
    options = {k.lower(): v for k, v in storage_options.items()}
    if str(location).startswith(("s3://", "s3a://")):
        options.setdefault("aws_conditional_put", "etag")
        endpoint = options.get("aws_endpoint_url", options.get("endpoint_url", ""))
        if endpoint.startswith("http://"):
            options.setdefault("aws_allow_http", "true")
    return options


def filesystem(uri: str | Path, storage_options: Mapping[str, str]) -> tuple[Any, str]:
    """A pyarrow filesystem and the path within it (``(None, path)`` for a local path)."""
    text = str(uri)
    if not is_remote(text):
        return None, text.removeprefix("file://")
    from pyarrow import fs

    if text.startswith(("s3://", "s3a://")):
        options = {k.lower(): v for k, v in storage_options.items()}
        endpoint = options.get("aws_endpoint_url") or options.get("endpoint_url")
        s3 = fs.S3FileSystem(
            region=options.get("aws_region", options.get("region", "us-east-1")),
            endpoint_override=endpoint,
            scheme="http" if endpoint and endpoint.startswith("http://") else "https",
            allow_bucket_creation=False,
        )
        return s3, text.split("://", 1)[1]
    filesystem_, path = fs.FileSystem.from_uri(text)
    return filesystem_, path


def list_files(uri: str | Path, storage_options: Mapping[str, str]) -> set[str]:
    """Every file under ``uri`` (recursively), as paths within its filesystem."""
    from pyarrow import fs

    filesystem_, path = filesystem(uri, storage_options)
    if filesystem_ is None:
        root = Path(path)
        return {str(p) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()
    infos = filesystem_.get_file_info(fs.FileSelector(path, recursive=True, allow_not_found=True))
    return {i.path for i in infos if i.type == fs.FileType.File}


def delete_files(uri: str | Path, storage_options: Mapping[str, str], paths: set[str]) -> None:
    """Delete ``paths`` (as returned by :func:`list_files`), ignoring ones already gone."""
    filesystem_, _ = filesystem(uri, storage_options)
    for path in paths:
        try:
            if filesystem_ is None:
                Path(path).unlink(missing_ok=True)
            else:
                filesystem_.delete_file(path)
        except FileNotFoundError:
            continue


def subfolders(uri: str | Path, storage_options: Mapping[str, str]) -> list[str]:
    """Names of the folders directly under ``uri``."""
    from pyarrow import fs

    filesystem_, path = filesystem(uri, storage_options)
    if filesystem_ is None:
        root = Path(path)
        return sorted(d.name for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
    infos = filesystem_.get_file_info(fs.FileSelector(path, recursive=False, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == fs.FileType.Directory)
