"""traces/zstd.py: blobs compressed and decompressed from many threads at once.

Ingest requests run in threads of their own; one shared zstandard compressor failed under
that load (ZstdError: "Src size is incorrect"), answering 500s to concurrent producers.
"""

from __future__ import annotations

import threading

import pytest
import zstandard

from traces import zstd


def test_threads_compress_and_decompress_at_once() -> None:
    blobs = [(f"state {i} " * (5_000 + 97 * i)).encode() for i in range(8)]
    failures: list[BaseException] = []
    start = threading.Barrier(len(blobs))

    def work(blob: bytes) -> None:
        start.wait()
        try:
            for _ in range(60):
                assert zstd.decompress(zstd.compress(blob)) == blob
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(blob,)) for blob in blobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_each_thread_keeps_its_own_compressor() -> None:
    mine = zstd.compressor()
    assert zstd.compressor() is mine
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(zstd.compressor()))
    thread.start()
    thread.join()
    assert other[0] is not mine


def test_bounded_decompression_stops_past_the_limit_without_inflating_it_all() -> None:
    data = b"x" * 5000
    # Streamed compression writes no content size: the bound cannot trust the header.
    packed = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    assert zstd.decompress_bounded(packed, 5000) == data
    with pytest.raises(zstd.TooLarge):
        zstd.decompress_bounded(packed, 4999)
    bomb = zstandard.ZstdCompressor().compress(b"\0" * (64 * 1024 * 1024))
    with pytest.raises(zstd.TooLarge):
        zstd.decompress_bounded(bomb, 1024 * 1024)
    with pytest.raises(zstandard.ZstdError):
        zstd.decompress_bounded(b"not zstd at all", 1024)
