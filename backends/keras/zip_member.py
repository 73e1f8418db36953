"""A .keras archive's uncompressed member opened in place, as a file that HDF5 can read.

Keras stores model.weights.h5 uncompressed; HDF5 reading it straight from the archive reads each
dataset when it is needed, where a copy of the member in memory would hold all the weights at once.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, fixed fields, name and extra-field lengths
_CHUNK = 1 << 20


class MemberFile(io.RawIOBase):
    """Bytes [start, start + size) of a file, read-only and seekable (what h5py's file-object driver
    needs)."""

    def __init__(self, path: str, start: int, size: int):
        super().__init__()
        self._file = open(path, "rb")
        self._start, self._size, self._pos = start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        wanted = max(0, min(len(buffer), self._size - self._pos))
        self._file.seek(self._start + self._pos)
        got = self._file.readinto(memoryview(buffer).cast("B")[:wanted])
        self._pos += got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


def open_stored(path: str, info: zipfile.ZipInfo) -> MemberFile | None:
    """The member as a file if it is stored uncompressed and unencrypted (None otherwise), after
    checking its CRC as zipfile would: a damaged archive is refused before any weight is used.
    Raises zipfile.BadZipFile."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        header = fh.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or _LOCAL_HEADER.unpack(header)[0] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local file header")
    name_length, extra_length = _LOCAL_HEADER.unpack(header)[1:]
    member = MemberFile(path, info.header_offset + _LOCAL_HEADER.size + name_length + extra_length,
                        info.file_size)
    crc, chunk = 0, bytearray(_CHUNK)
    while got := member.readinto(chunk):
        crc = zlib.crc32(memoryview(chunk)[:got], crc)
    if crc != info.CRC or member.tell() != info.file_size:
        member.close()
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
    member.seek(0)
    return member
