"""The files one ``thinkforge sql`` query may read, served read-only to its sandbox.

DuckDB reads Parquet fastest with its own reader (about 1.5x faster than scanning an
Arrow dataset over the same shards, bench/README.md: sql_first_row), but giving it a local
path through ``allowed_paths`` would let a statement that got past the allow-list write
that path too (``COPY ... TO`` honours ``allowed_paths``).  So the sandbox never sees a
local path: it reads ``thinkforge://datasets/NAME/vN/...`` through this filesystem, which

- knows exactly the shard files of the versions the query names (relative to the store:
  no store path appears in a view, a plan or an error);
- opens them for reading only; every write, delete, rename, directory listing or glob is
  refused with PermissionError, and any other name does not exist.

``allowed_paths`` lists the same URLs, so DuckDB's own check refuses any other file first.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from fsspec import AbstractFileSystem

PROTOCOL = "thinkforge"


def url(rel: str) -> str:
    return f"{PROTOCOL}://{rel}"


class QueryFiles(AbstractFileSystem):
    """Read-only access to a fixed set of files under ``root`` (see the module docstring)."""

    protocol = PROTOCOL
    root_marker = ""
    cachable = False  # fsspec would keep every instance (and its file set) alive otherwise

    def __init__(self, root: Path, files: list[Path]):
        super().__init__()
        self._files = {Path(p).relative_to(root).as_posix(): Path(p) for p in files}
        self._root = root

    def urls(self) -> list[str]:
        return [url(rel) for rel in self._files]

    def url_of(self, path: Path) -> str:
        """The URL the sandbox reads ``path`` (one of the files) by."""
        return url(Path(path).relative_to(self._root).as_posix())

    def _real(self, path: str) -> Path:
        rel = self._strip_protocol(path)
        if rel not in self._files:  # exact names only: no "..", no prefix, no pattern
            raise FileNotFoundError(f"{path}: not a file this query reads")
        return self._files[rel]

    def open(self, path, mode="rb", **kwargs):
        if mode != "rb":
            raise PermissionError(f"{path}: the query sandbox reads files, never writes them")
        return _ReadHandle(self._real(path))

    def _open(self, path, mode="rb", **kwargs):
        return self.open(path, mode)

    def info(self, path, **kwargs):
        st = os.stat(self._real(path))
        return {"name": self._strip_protocol(path), "size": st.st_size, "type": "file",
                "mtime": st.st_mtime}

    def exists(self, path, **kwargs) -> bool:
        return self._strip_protocol(path) in self._files

    def isdir(self, path) -> bool:
        return False

    def isfile(self, path) -> bool:
        return self.exists(path)

    def modified(self, path):
        return datetime.fromtimestamp(self.info(path)["mtime"], tz=UTC)

    def glob(self, path, **kwargs):
        """A file the query reads matches itself; no pattern lists anything."""
        return [path] if self.exists(path) else []

    def ls(self, path, detail=True, **kwargs):
        raise PermissionError(f"{path}: the query sandbox lists no directories")

    def _refuse(self, path="", *args, **kwargs):
        raise PermissionError(f"{path}: the query sandbox reads files, never writes them")

    rm = rm_file = _rm = rmdir = mkdir = makedirs = touch = mv = cp_file = copy = _refuse
    put = put_file = pipe = pipe_file = move = rename = _refuse


class _ReadHandle:
    """A read-only file whose position is per thread: DuckDB's threads share one handle and
    each read is a seek then a read, so a shared position would mix their bytes."""

    def __init__(self, path: Path):
        self._fd = os.open(path, os.O_RDONLY)
        self._size = os.fstat(self._fd).st_size
        self._pos = threading.local()
        self.closed = False

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self.tell(), self._size)[whence]
        self._pos.value = base + offset
        return self._pos.value

    def tell(self) -> int:
        return getattr(self._pos, "value", 0)

    def read(self, size: int = -1) -> bytes:
        start = self.tell()
        data = os.pread(self._fd, self._size - start if size is None or size < 0 else size, start)
        self._pos.value = start + len(data)
        return data

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def write(self, data) -> int:
        raise PermissionError("the query sandbox reads files, never writes them")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
