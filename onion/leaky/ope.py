"""OPE layer (Ord onion): order-preserving encryption, Boldyreva et al. (EUROCRYPT 2009).

For plaintexts in [0, 2**D) (see onion.column for how each SQL type maps there) the
ciphertext is an integer in [0, 2**R), stored as fixed-width big-endian bytes (BINARY(R/8)),
so MariaDB's memcmp order on the column is the plaintext order and range scans use indexes.
m1 < m2 <=> Enc(m1) < Enc(m2); equal plaintexts give equal ciphertexts.

The scheme itself is in _ope_ref.py (pure Python, the definition) and _ope_core.c (the same
algorithm compiled, used when onion/build/libcryptdb_ope.so exists: `make -C onion`).

Leaks (BCLO's POPF-CCA notion, and Boldyreva et al. 2011): order and equality of all values,
and roughly the upper half of each plaintext's bits (a ciphertext's position in the range
locates the plaintext to within about the square root of the domain). Keep OPE off
low-entropy sensitive columns.
"""

from __future__ import annotations

import ctypes
import threading
from collections import OrderedDict
from pathlib import Path

from onion.errors import InvalidCiphertext
from onion.leaky._ope_ref import KEY_SIZE, OpeRef

LIBRARY = Path(__file__).resolve().parents[1] / "build" / "libcryptdb_ope.so"
_OK, _FALLBACK, _INVALID = 0, 1, 2


def _load() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(str(LIBRARY))
    except OSError:
        return None
    lib.ope_new.restype = ctypes.c_void_p
    lib.ope_new.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
    lib.ope_free.restype = None
    lib.ope_free.argtypes = [ctypes.c_void_p]
    lib.ope_encrypt.restype = ctypes.c_int
    lib.ope_encrypt.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p]
    lib.ope_decrypt.restype = ctypes.c_int
    lib.ope_decrypt.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                ctypes.POINTER(ctypes.c_uint64)]
    return lib


_LIB = _load()
NATIVE = _LIB is not None


def _reload_native() -> bool:
    """Loads the library again (after `make -C onion` in a running process, e.g. tests)."""
    global _LIB, NATIVE
    _LIB = _load()
    NATIVE = _LIB is not None
    return NATIVE


class _Native:
    """ctypes handle on one ope_ctx; a lock because ctypes drops the GIL during calls."""

    def __init__(self, lib: ctypes.CDLL, key: bytes, d: int, r: int) -> None:
        self._lib = lib
        self._lock = threading.Lock()
        handle = lib.ope_new(key, d, r)
        if not handle:
            raise RuntimeError("ope_new failed")
        self._ctx = ctypes.c_void_p(handle)

    def __del__(self) -> None:
        ctx = getattr(self, "_ctx", None)
        if ctx:
            self._lib.ope_free(ctx)

    def encrypt(self, m: int) -> int | None:
        out = ctypes.create_string_buffer(16)
        with self._lock:
            st = self._lib.ope_encrypt(self._ctx, m, out)
        if st == _OK:
            return int.from_bytes(out.raw, "big")
        if st == _FALLBACK:
            return None
        raise RuntimeError("ope_encrypt failed")

    def decrypt(self, c: int) -> int | None:
        m = ctypes.c_uint64()
        with self._lock:
            st = self._lib.ope_decrypt(self._ctx, c.to_bytes(16, "big"), ctypes.byref(m))
        if st == _OK:
            return m.value
        if st == _FALLBACK:
            return None
        if st == _INVALID:
            raise InvalidCiphertext()
        raise RuntimeError("ope_decrypt failed")


class Ope:
    """OPE from [0, 2**d) to [0, 2**r) under a 64-byte key, with a bounded ciphertext cache.

    Reuse one instance per (key, d, r). `cache_size=0` disables the cache."""

    def __init__(self, key: bytes, d: int = 64, r: int = 128, *, cache_size: int = 4096,
                 native: bool | None = None) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError("OPE key must be 64 bytes")
        self.d, self.r = d, r
        self.width = (r + 7) // 8
        self._ref = OpeRef(key, d, r)
        use_native = NATIVE if native is None else native
        if use_native and (_LIB is None or d > 64 or r > 128):
            if native:
                raise RuntimeError("compiled OPE core unavailable for these parameters")
            use_native = False
        self._native = _Native(_LIB, key, d, r) if use_native and _LIB is not None else None
        self._cache: OrderedDict[int, int] = OrderedDict()
        self._cache_size = cache_size
        self.fallbacks = 0  # values the compiled core handed to the reference

    @property
    def is_native(self) -> bool:
        return self._native is not None

    def encrypt_int(self, m: int) -> int:
        c = self._cache.get(m)
        if c is not None:
            self._cache.move_to_end(m)
            return c
        c = self._encrypt_uncached(m)
        if self._cache_size:
            self._cache[m] = c
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return c

    def _encrypt_uncached(self, m: int) -> int:
        if not 0 <= m < 1 << self.d:
            raise ValueError("plaintext outside the OPE domain")
        if self._native is not None:
            c = self._native.encrypt(m)
            if c is not None:
                return c
            self.fallbacks += 1
        return self._ref.encrypt(m)

    def decrypt_int(self, c: int) -> int:
        if not 0 <= c < 1 << self.r:
            raise InvalidCiphertext()
        if self._native is not None:
            m = self._native.decrypt(c)
            if m is not None:
                return m
            self.fallbacks += 1
        return self._ref.decrypt(c)

    def encrypt(self, m: int) -> bytes:
        """The ciphertext as `width` big-endian bytes (compare with memcmp / BINARY)."""
        return self.encrypt_int(m).to_bytes(self.width, "big")

    def decrypt(self, ct: bytes) -> int:
        if len(ct) != self.width:
            raise InvalidCiphertext()
        return self.decrypt_int(int.from_bytes(ct, "big"))
