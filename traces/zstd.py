"""zstd for stored blobs (state snapshots, live events, DashStream frames), safe in threads.

A ``zstandard`` compressor or decompressor must not be used by two threads at once: under
load, concurrent ingest requests (each in its own thread under ASGI) sharing one module-level
compressor failed with ``ZstdError: cannot compress: Src size is incorrect``
(benchmarks/live.py, 4 producers). Each thread reuses its own pair instead.
"""

from __future__ import annotations

import threading

import zstandard

LEVEL = 3

_local = threading.local()


def compressor() -> zstandard.ZstdCompressor:
    found: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if found is None:
        found = _local.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return found


def decompressor() -> zstandard.ZstdDecompressor:
    found: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = zstandard.ZstdDecompressor()
    return found


def compress(data: bytes) -> bytes:
    return compressor().compress(data)


def decompress(data: bytes) -> bytes:
    return decompressor().decompress(data)


class TooLarge(ValueError):
    """The data decompresses to more than the limit it was read with."""


def decompress_bounded(data: bytes, limit: int) -> bytes:
    """``data`` decompressed, reading at most ``limit + 1`` bytes of output: ``TooLarge``
    past ``limit`` (a small bomb cannot expand in memory), ``zstandard.ZstdError`` when
    ``data`` is not zstd. Unlike ``decompress`` it needs no content size in the frame."""
    parts: list[bytes] = []
    size = 0
    with decompressor().stream_reader(data) as reader:
        while True:
            chunk = reader.read(min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"decompresses to more than {limit} bytes")
    return b"".join(parts)
