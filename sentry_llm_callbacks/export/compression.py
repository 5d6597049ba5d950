"""Request bodies built from compressed segments, in the ``Content-Encoding`` the endpoint takes.

Spans are encoded and compressed in segments, by whichever thread has time (the export
thread, or an application thread when the export thread is behind); segments concatenate into
one body without compressing anything twice. A body is one gzip member (the default, what
Sentry's Relay reads), one zlib stream (``deflate``), or the encoded bytes as they are
(``none``), as ``OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`` asks.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

_CRC_POLY = 0xEDB88320  # CRC-32 (gzip), reflected


def _crc_multiply(a: int, b: int) -> int:
    """``a * b`` modulo the CRC-32 polynomial (bit-reflected, as zlib does it)."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1


def _crc_powers() -> list[int]:
    """x^(2^n) modulo the polynomial, n = 0..31."""
    powers = [1 << 30]  # x^1
    for _ in range(31):
        powers.append(_crc_multiply(powers[-1], powers[-1]))
    return powers


_CRC_POWERS = _crc_powers()


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)`` (zlib's
    ``crc32_combine``, which Python's zlib does not expose).

    >>> crc32_combine(zlib.crc32(b"abc"), zlib.crc32(b"def"), 3) == zlib.crc32(b"abcdef")
    True
    """
    shift = 1 << 31  # x^0
    n, k = len2, 3  # len2 bytes: x^(8 * len2)
    while n:
        if n & 1:
            shift = _crc_multiply(_CRC_POWERS[k & 31], shift)
        n >>= 1
        k += 1
    return _crc_multiply(shift, crc1) ^ crc2


def deflate_segment(data: bytes) -> bytes:
    """``data`` as raw deflate ending on a byte boundary with no final block: segments made
    apart, by any thread, concatenate into one deflate stream (:class:`GzipRequest`)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)  # level 1: fast; -15: no header
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no time
_FINAL_BLOCK = zlib.compressobj(1, zlib.DEFLATED, -15).flush()  # an empty last block


class GzipRequest:
    """One request body held compressed, as deflate segments (:func:`deflate_segment`) with
    the running CRC: sealed, it is ONE gzip member (what Relay decompresses). A backlog held this
    way takes about a tenth of the memory of the encoded spans (and a twentieth of the span
    objects'). Segments are compressed by whichever thread made them, with no lock held:
    compression gives the interpreter lock away, and under load getting it back can take
    seconds, during which nobody else must be kept from compressing."""

    __slots__ = ("_crc", "_parts", "count", "raw_bytes", "size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._crc = 0
        self.count = 0  #: spans in it
        self.raw_bytes = 0  #: uncompressed size (the request limit applies to it)
        self.size = 0  #: compressed bytes held

    def add(self, segment: bytes, crc: int, raw: int, count: int) -> None:
        """Append one compressed segment (pure Python: the caller may hold a lock)."""
        self._parts.append(segment)
        self._crc = crc32_combine(self._crc, crc, raw)
        self.count += count
        self.raw_bytes += raw
        self.size += len(segment)

    def seal(self) -> bytes:
        """The finished gzip body (``size`` then counts all of it)."""
        trailer = _FINAL_BLOCK + struct.pack("<II", self._crc, self.raw_bytes & 0xFFFFFFFF)
        body = b"".join([_GZIP_HEADER, *self._parts, trailer])
        self._parts = []
        self.size = len(body)
        return body


_ADLER_BASE = 65521


def adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    """The Adler-32 of ``A + B`` from ``adler32(A)``, ``adler32(B)`` and ``len(B)`` (zlib's
    ``adler32_combine``, which Python's zlib does not expose).

    >>> adler32_combine(zlib.adler32(b"abc"), zlib.adler32(b"def"), 3) == zlib.adler32(b"abcdef")
    True
    """
    rem = len2 % _ADLER_BASE
    sum1 = adler1 & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 = (sum1 + (adler2 & 0xFFFF) + _ADLER_BASE - 1) % _ADLER_BASE
    sum2 = (sum2 + ((adler1 >> 16) & 0xFFFF) + ((adler2 >> 16) & 0xFFFF) + _ADLER_BASE - rem) % _ADLER_BASE
    return sum1 | (sum2 << 16)


class DeflateRequest(GzipRequest):
    """:class:`GzipRequest` framed as one zlib stream (``Content-Encoding: deflate``)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self._crc = 1  # the Adler-32 of nothing

    def add(self, segment: bytes, crc: int, raw: int, count: int) -> None:
        self._parts.append(segment)
        self._crc = adler32_combine(self._crc, crc, raw)
        self.count += count
        self.raw_bytes += raw
        self.size += len(segment)

    def seal(self) -> bytes:
        body = b"".join([_ZLIB_HEADER, *self._parts, _FINAL_BLOCK, struct.pack(">I", self._crc)])
        self._parts = []
        self.size = len(body)
        return body


_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, fastest level (as level 1 writes it)


class PlainRequest(GzipRequest):
    """Segments that are the encoded bytes themselves (no ``Content-Encoding``)."""

    __slots__ = ()

    def add(self, segment: bytes, crc: int, raw: int, count: int) -> None:
        self._parts.append(segment)
        self.count += count
        self.raw_bytes += raw
        self.size += len(segment)

    def seal(self) -> bytes:
        body = b"".join(self._parts)
        self._parts = []
        self.size = len(body)
        return body


@dataclass(frozen=True, slots=True)
class Compression:
    """How request bodies are compressed: ``gzip`` (the default), ``deflate`` or ``none``.

    >>> body = Compression("none").new_request()
    >>> segment, check = Compression("none").segment(b"abc")
    >>> body.add(segment, check, 3, 1); body.seal()
    b'abc'
    """

    name: str = "gzip"

    @property
    def content_encoding(self) -> str | None:
        return None if self.name == "none" else self.name

    def segment(self, data: bytes) -> tuple[bytes, int]:
        """``data`` as one segment of a body, with its checksum for that body's trailer."""
        if self.name == "none":
            return data, 0
        checksum = zlib.adler32(data) if self.name == "deflate" else zlib.crc32(data)
        return deflate_segment(data), checksum

    def new_request(self) -> GzipRequest:
        if self.name == "deflate":
            return DeflateRequest()
        if self.name == "none":
            return PlainRequest()
        return GzipRequest()


#: The default: what Sentry's ingestion expects.
GZIP = Compression("gzip")
