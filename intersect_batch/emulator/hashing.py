"""Stable, seedable hashing: every "random" choice of the emulator is a hash of its inputs."""

from __future__ import annotations

import hashlib
from statistics import NormalDist

__all__ = ["Bits", "digest_int", "normal", "text_hash", "uniform"]

_STD_NORMAL = NormalDist()


def digest_int(data: bytes, size: int = 16) -> int:
    """A ``size``-byte blake2b of ``data`` as a non-negative int."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=size).digest(), "little")


def text_hash(*parts: object) -> int:
    """A 64-bit hash of the ``repr`` of ``parts`` (stable across runs and processes)."""
    return digest_int(repr(parts).encode(), 8)


def uniform(*parts: object) -> float:
    """A number in [0, 1) drawn from ``parts``."""
    return text_hash(*parts) / 2.0**64


def normal(*parts: object) -> float:
    """A standard normal value drawn from ``parts``."""
    u = (text_hash(*parts) + 0.5) / 2.0**64
    return _STD_NORMAL.inv_cdf(u)


class Bits:
    """Draws small integers one after another from one big hash value."""

    __slots__ = ("_h",)

    def __init__(self, value: int) -> None:
        self._h = value

    def take(self, n: int) -> int:
        """An int in ``range(n)``."""
        h = self._h
        self._h = h // n
        return h % n

    def chance(self, per_mille: int) -> bool:
        """True with probability ``per_mille / 1000``."""
        return self.take(1000) < per_mille
