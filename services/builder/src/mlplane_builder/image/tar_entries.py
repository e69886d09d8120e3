"""The tar framing of a layer: parent directories, each file's header, the end.

Only the framing is built here; a file's bytes stream between its `tar_prefix`
and its `tar_padding` (`tar_suffix` for the last one: padding and the end).
Every header field that could vary between machines or runs (mtime, owner,
names of owner and group, directory modes) is fixed, so equal inputs give
equal bytes. Headers are POSIX ustar, with a PAX extended header
only where ustar cannot hold a value (a name past 100 characters, a size of
8 GiB or more, a non-ASCII name); the PAX record itself is deterministic too.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass

from mlplane_builder.image.errors import InvalidLayerFile

BLOCK = 512
# Two zero blocks end a tar archive. We stop there: padding to tar's 10 KiB
# "record" would add bytes that no reader needs.
END_OF_ARCHIVE = bytes(2 * BLOCK)
DIRECTORY_MODE = 0o755


@dataclass(frozen=True, slots=True)
class LayerFile:
    """A file a model layer carries (one model file, or each file of a model directory).

    `path` is absolute in the image (`/models/fraud/3/model.onnx`); `size` is
    the exact number of bytes the source will stream. Raises `InvalidLayerFile`
    for a relative or non-normal path, a negative size or a mode past 0o7777.
    """

    path: str
    size: int
    mode: int = 0o644

    def __post_init__(self) -> None:
        _check_path(self.path)
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise InvalidLayerFile(f"size must be a whole number of bytes, got {self.size!r}")
        if isinstance(self.mode, bool) or not isinstance(self.mode, int):
            raise InvalidLayerFile(f"mode must be an integer, got {self.mode!r}")
        if not 0 <= self.mode <= 0o7777:
            raise InvalidLayerFile(f"mode must be within 0o0..0o7777, got {oct(self.mode)}")

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.path.split("/")[1:])


def _check_path(path: str) -> None:
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidLayerFile(f"path must be absolute, got {path!r}")
    if "\0" in path:
        raise InvalidLayerFile(f"path must not contain NUL, got {path!r}")
    for part in path.split("/")[1:]:
        # Tar readers resolve "..", "." and "//" differently; a normal path
        # means every reader puts the file at the same place.
        if part in ("", ".", ".."):
            raise InvalidLayerFile(f"path must be normal (no '', '.', '..' parts), got {path!r}")


def tar_prefix(file: LayerFile, previous: LayerFile | None = None) -> bytes:
    """Headers of the file's parent directories (outermost first) that `previous`, the
    file before it in the layer, did not open already; then the file's header."""
    parts = file.parts
    opened = () if previous is None else previous.parts[:-1]
    shared = 0
    while shared < min(len(opened), len(parts) - 1) and opened[shared] == parts[shared]:
        shared += 1
    headers = [
        _header("/".join(parts[:depth]), tarfile.DIRTYPE, DIRECTORY_MODE, 0)
        for depth in range(shared + 1, len(parts))
    ]
    headers.append(_header("/".join(parts), tarfile.REGTYPE, file.mode, file.size))
    return b"".join(headers)


def tar_padding(size: int) -> bytes:
    """What follows a `size`-byte file's content before the next header: zeros to a block."""
    return bytes(-size % BLOCK)


def tar_suffix(size: int) -> bytes:
    """What follows a `size`-byte file's content: padding to a block, then the archive's end."""
    return tar_padding(size) + END_OF_ARCHIVE


def _header(name: str, kind: bytes, mode: int, size: int) -> bytes:
    info = tarfile.TarInfo(name)  # tarfile adds the trailing "/" of directory names
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")
