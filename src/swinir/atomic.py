"""Atomic file writes: a temporary file beside the destination, then ``os.replace``.

An interrupted run never leaves a half-written image, checkpoint or log behind, and a reader never sees one.
With ``replace=False`` the finished file is published without replacing anything: a hard link to the new
name fails if the name exists, so of two processes writing the same output exactly one wins and the other
gets ``FileExistsError``, with no window between a check and the rename (issue 23: two runs into one folder
each reported files the other had written). Where hard links are not supported (FAT, some network shares)
the name is claimed with an exclusive create, then replaced by the finished file (a crash between the two
leaves an empty file under the name, which the next run reports as existing).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# link() errors that mean "no hard links on this file system", not "the name is taken"
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS, errno.EACCES}


def publish_new(tmp: Path, dest: Path) -> None:
    """Give the finished file ``tmp`` the name ``dest`` unless that name exists (``FileExistsError``)."""
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        os.close(os.open(dest, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # claim the name, or fail
        os.replace(tmp, dest)
    else:
        tmp.unlink()


@contextmanager
def atomic_path(dest: str | os.PathLike[str], suffix: str = ".tmp", replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path in ``dest``'s folder; on success it replaces ``dest``, on error it is removed.

    ``suffix`` lets writers that pick the format from the extension (cv2.imwrite, savefig) see it.
    The file gets the usual (umask) permissions, not mkstemp's 0600. ``replace=False``: an existing
    ``dest`` (even one that appears while the file is written) is left alone and ``FileExistsError`` raised.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        if replace:
            os.replace(tmp, dest)
        else:
            publish_new(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(dest: str | os.PathLike[str], data: bytes, replace: bool = True) -> Path:
    with atomic_path(dest, replace=replace) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)
