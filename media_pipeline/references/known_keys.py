"""The set of keys the catalog knows, compact enough to hand to every scan worker.

The extractor needs it only to choose between candidate readings of an ambiguous URL (``a.jpg,``
or ``a.jpg``), so membership may be approximate in one direction: each key is held as the low
64 bits of its MD5 in a sorted ``uint64`` array, **8 bytes per key** (1,000,000 keys = 8 MB,
100,000,000 keys = 800 MB), shared copy-on-write by forked workers because nobody writes to it.
A hash collision (about ``n / 2**64`` per lookup) can only make a candidate that does not exist
look known, which keeps a reference that would otherwise have been kept as another spelling;
it can never drop one.

The hash is DuckDB's ``md5_number_lower(key)`` (read from ``md5(key)``'s digits), so a catalog
builds the array without handing a single key to Python (:meth:`KnownKeys.from_duckdb`).

Beside the hashes, a *profile* of three facts about all keys: whether any contains ``%``, which
of the characters ``.,;:!?*_~)]}`` some key ends with, and whether any has a digit after
whitespace (as ``a.jpg 2x`` has). Most catalogs have none of them, and then a candidate reading
such as a URL path as written (``caf%C3%A9.jpg``), one with trailing punctuation (``a.jpg).``)
or a whole ``srcset`` value (``a.jpg 1x, b.jpg 2x``) surely names no key
(:meth:`KnownKeys.may_hold`), and the extractor skips looking it up: most references then need no
lookup at all. DuckDB computes the profile in one more pass (~0.06 s for 1,000,000 keys).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

_EMPTY = np.empty(0, dtype=np.uint64)
try:  # CPython's own MD5: the same digest, ~2x faster than OpenSSL's for short keys
    from _md5 import md5 as fast_md5
except ImportError:  # pragma: no cover - other Pythons
    fast_md5 = hashlib.md5
PROFILED_ENDINGS = ".,;:!?*_~)]}"
"""Characters the profile records as key endings (the extractor's trailing punctuation)."""
# Python's ``\s`` (``str.isspace``) spelled out, so DuckDB's RE2 tests the very same characters.
_WHITESPACE = "".join(c for c in map(chr, range(0x110000)) if c.isspace())
_SPACE_DIGIT = re.compile(r"\s[0-9]")
_RE2_SPACE_DIGIT = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _WHITESPACE) + "][0-9]"
_SQL_ENDINGS = PROFILED_ENDINGS.replace("'", "''")


def key_hash(key: str) -> int:
    """DuckDB's ``md5_number_lower(key)``: bytes 8..15 of the key's UTF-8 MD5, little-endian."""
    digest = hashlib.md5(key.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "little")


class KnownKeys:
    """Sorted 64-bit key hashes; ``contains`` answers for many candidates in one call."""

    __slots__ = ("_hashes", "_percent", "_absent_endings", "_space_digit")

    def __init__(self, hashes: npt.NDArray[np.uint64], *, percent: bool = True,
                 endings: str = PROFILED_ENDINGS, space_digit: bool = True) -> None:
        """The profile: ``percent``, whether a key may contain ``%``; ``endings``, which
        characters of :data:`PROFILED_ENDINGS` a key may end with; ``space_digit``, whether a
        key may have a digit right after whitespace. The defaults claim nothing."""
        self._percent = percent
        self._absent_endings = frozenset(PROFILED_ENDINGS) - frozenset(endings)
        self._space_digit = space_digit
        # Sorted, no repeats. (Not np.unique: on 1,000,000 uint64 it takes ~0.9 s, sort + mask
        # ~10 ms.)
        ordered = np.sort(np.asarray(hashes, dtype=np.uint64))
        if ordered.size > 1:
            keep = np.empty(ordered.size, dtype=bool)
            keep[0] = True
            np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
            ordered = ordered[keep]
        self._hashes = ordered

    @classmethod
    def empty(cls) -> KnownKeys:
        return cls(_EMPTY)

    @classmethod
    def from_keys(cls, keys: Iterable[str]) -> KnownKeys:
        """From keys in memory (tests, small buckets)."""
        keys = list(keys)
        endings = {k[-1] for k in keys if k and k[-1] in PROFILED_ENDINGS}
        return cls(np.fromiter((key_hash(k) for k in keys), dtype=np.uint64, count=len(keys)),
                   percent=any("%" in k for k in keys), endings="".join(endings),
                   space_digit=any(_SPACE_DIGIT.search(k) for k in keys))

    @classmethod
    def from_duckdb(cls, con: Any, query: str, params: Sequence[Any] = ()) -> KnownKeys:
        """From a query whose first column is the key, e.g.
        ``SELECT key FROM media_files WHERE bucket = ?``. DuckDB hashes; Python gets 8 bytes
        a key and never the keys themselves."""
        keys = f"(SELECT * FROM ({query})) AS q(k)"
        # md5_number_lower(k), read from md5's hex digits (~2x less CPU): digits 17..32 are
        # bytes 8..15, as a big-endian number
        column = con.execute(f"SELECT ('0x' || md5(k)[17:])::UBIGINT AS h FROM {keys}",
                             list(params)).fetchnumpy()["h"]
        hashes = np.asarray(column, dtype=np.uint64).byteswap()
        profile = con.execute(
            f"""SELECT coalesce(bool_or(contains(k, '%')), false),
                       list_distinct(list(right(k, 1))
                                     FILTER (WHERE contains('{_SQL_ENDINGS}', right(k, 1)))),
                       coalesce(bool_or(regexp_matches(k, '{_RE2_SPACE_DIGIT}')), false)
                FROM {keys}""", list(params)).fetchone()
        if profile is None:
            return cls(hashes)
        percent, endings, space_digit = profile
        return cls(hashes, percent=bool(percent), endings="".join(endings or ()),
                   space_digit=bool(space_digit))

    @classmethod
    def media_ids_from_duckdb(cls, con: Any, query: str, params: Sequence[Any] = ()
                              ) -> KnownKeys:
        """Media ids (a query whose first column is a UUID, e.g. ``SELECT media_id FROM
        media_files WHERE bucket = ?``) for membership tests of media ids found in text: the
        low 8 bytes of each, little-endian, which for a media id ``md5(bucket NUL key)`` is
        :func:`key_hash` of ``bucket NUL key``. Read from the stored ids: no hashing at all."""
        column = con.execute(
            # (the last 16 hex digits: DuckDB 1.5 has no UUID -> UHUGEINT cast)
            "SELECT ('0x' || right(replace(m::VARCHAR, '-', ''), 16))::UBIGINT AS h "
            f"FROM (SELECT * FROM ({query})) AS q(m)", list(params)).fetchnumpy()["h"]
        # DuckDB gives bytes 8..15 as a big-endian number
        return cls(np.asarray(column, dtype=np.uint64).byteswap())

    def may_hold(self, key: str) -> bool:
        """False when the profile shows no known key can be ``key`` (it has a ``%``, or a digit
        after whitespace, and no key has, or it ends with a character no key ends with); True
        means "look it up"."""
        if "%" in key and not self._percent:
            return False
        if key and key[-1] in self._absent_endings:
            return False
        return self._space_digit or not _SPACE_DIGIT.search(key)

    @property
    def percent_possible(self) -> bool:
        """Whether some known key may contain ``%``."""
        return self._percent

    @property
    def space_digit_possible(self) -> bool:
        """Whether some known key may have a digit right after whitespace."""
        return self._space_digit

    def never_ends_with(self, chars: str) -> bool:
        """Whether the profile shows that no known key ends with any of ``chars``."""
        absent = self._absent_endings
        return all(c in absent for c in chars)

    def __len__(self) -> int:
        return int(self._hashes.size)

    @property
    def nbytes(self) -> int:
        return int(self._hashes.nbytes)

    def contains(self, hashes: Sequence[int]) -> list[bool]:
        """For each hash (from :func:`key_hash`), whether a known key has it."""
        if not hashes or not self._hashes.size:
            return [False] * len(hashes)
        wanted = np.fromiter(hashes, dtype=np.uint64, count=len(hashes))
        at = np.searchsorted(self._hashes, wanted)
        at[at == self._hashes.size] = 0
        found: list[bool] = (self._hashes[at] == wanted).tolist()
        return found

    def contains_keys(self, keys: Sequence[str]) -> list[bool]:
        """For each key, whether it is known: :meth:`contains` for many keys at once, hashed
        and looked up in bulk (the scan resolves a whole chunk of documents in one call)."""
        if not keys or not self._hashes.size:
            return [False] * len(keys)
        md5 = fast_md5
        wanted = np.frombuffer(b"".join([md5(k.encode("utf-8")).digest()[8:] for k in keys]),
                               dtype="<u8")
        # Looked up in sorted order: neighbouring candidates then touch neighbouring memory,
        # ~3x faster on a million keys than in text order.
        order = np.argsort(wanted)
        ordered = wanted[order]
        at = np.searchsorted(self._hashes, ordered)
        at[at == self._hashes.size] = 0
        found = np.empty(len(keys), dtype=bool)
        found[order] = self._hashes[at] == ordered
        result: list[bool] = found.tolist()
        return result

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.contains([key_hash(key)])[0]
