"""Writing the tar streams that carry files into the apache service (app versions, job inputs)."""

from __future__ import annotations

import io
import tarfile
import time
from typing import IO


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    add_stream(tar, name, io.BytesIO(data), len(data), mode)


def add_stream(tar: tarfile.TarFile, name: str, stream: IO[bytes], size: int, mode: int = 0o644) -> None:
    """A file of `size` bytes read from `stream`, never held whole."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = int(time.time())
    tar.addfile(info, stream)
