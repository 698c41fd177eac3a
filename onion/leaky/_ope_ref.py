"""Reference OPE, pure Python: the definition the C core (_ope_core.c) must match bit for bit.

Boldyreva, Chenette, Lee, O'Neill (EUROCRYPT 2009), "Order-preserving symmetric encryption":
the ciphertext of m is found by lazily sampling a random order-preserving function from
[0, 2**D) to [0, 2**R), descending a binary tree over the range. At a node with M domain
points over a range of 2**e points, the number x of domain points mapped into the lower half
is BCLO's hypergeometric HGD(2**e, M, 2**(e-1)) sample; it is drawn here from Binomial(M, 1/2),
whose statistical distance to that hypergeometric is at most 4M/2**e (Diaconis-Freedman), i.e.
about 2**-62 per node when R = D + 64 (docs/onion-format.md has the argument). Binomial(M, 1/2)
is sampled exactly, and reproducibly: every draw is integer arithmetic on coin words, and the
one real-valued test (rejection sampling) is decided in double precision only when it is
clear by a wide margin, otherwise with MPFR at growing precision (gmpy2). So the ciphertext is
a mathematical function of (key, D, R, m), whatever the platform's libm.

Coins (ECBC-MAC, a PRF on block-aligned inputs): with E1 = AES-256(key[:32]), E2 =
AES-256(key[32:]), the node reached by path bits b_0..b_(t-1) has chain state
    S = E1(...E1(E1(P_init) ^ P(0, b_0))... ^ P(t-1, b_(t-1)))
and its coin block j is E2(E1(S ^ C(j))), read as two big-endian 64-bit words.
    P_init = 00 01 | D (u16) | R (u16) | 00*10;  P(t, b) = 01 | b | t (u16) | 00*12;
    C(j)   = 02 | 00*7 | j (u64)
"""

from __future__ import annotations

import math
from math import isqrt

import gmpy2
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from onion.errors import InvalidCiphertext

KEY_SIZE = 64
SMALL_M = 1024  # up to here x = popcount of M coin bits (exact by definition)
TAIL_MIN = 128  # min(x, M - x) below this: R < 2**-64 provably (M > SMALL_M)
ETA = 2.0**-30  # double-precision decisions need this margin in log space
_LOG2_64 = 64 * math.log(2)


class _Prf:
    __slots__ = ("_e1", "_e2", "root")

    def __init__(self, key: bytes, d: int, r: int) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError("OPE key must be 64 bytes")
        # Single 16-byte blocks only: ECB here is the raw AES permutation.
        self._e1 = Cipher(algorithms.AES(key[:32]), modes.ECB()).encryptor()  # noqa: S305
        self._e2 = Cipher(algorithms.AES(key[32:]), modes.ECB()).encryptor()  # noqa: S305
        init = bytes((0, 1)) + d.to_bytes(2, "big") + r.to_bytes(2, "big") + bytes(10)
        self.root = int.from_bytes(self._e1.update(init), "big")

    def child(self, state: int, depth: int, bit: int) -> int:
        p = (0x01 << 120) | (bit << 112) | (depth << 96)
        return int.from_bytes(self._e1.update((state ^ p).to_bytes(16, "big")), "big")

    def coin_block(self, state: int, j: int) -> int:
        c = (0x02 << 120) | j
        inner = self._e1.update((state ^ c).to_bytes(16, "big"))
        return int.from_bytes(self._e2.update(inner), "big")


class _Coins:
    """The 64-bit coin words of one node, in order."""

    __slots__ = ("_prf", "_state", "_j", "_pending")

    def __init__(self, prf: _Prf, state: int) -> None:
        self._prf, self._state, self._j, self._pending = prf, state, 0, -1

    def word(self) -> int:
        if self._pending >= 0:
            w, self._pending = self._pending, -1
            return w
        block = self._prf.coin_block(self._state, self._j)
        self._j += 1
        self._pending = block & 0xFFFFFFFFFFFFFFFF
        return block >> 64

    def words(self, n: int) -> int:
        acc = 0
        for _ in range(n):
            acc = (acc << 64) | self.word()
        return acc


def _uniform_below(coins: _Coins, bound: int) -> int:
    n = (bound.bit_length() + 63) // 64
    span = 1 << (64 * n)
    limit = span - span % bound
    while True:
        w = coins.words(n)
        if w < limit:
            return w % bound


def _pareto_ceil(coins: _Coins, s: int, limit: int) -> int | None:
    """ceil(s / U) for a uniform U in (0, 1) read word by word until it is determined;
    None once it is known to exceed `limit` (outside the binomial's support)."""
    acc = 0
    w = 0
    while True:
        acc = (acc << 64) | coins.word()
        w += 1
        scaled = s << (64 * w)
        jmin = scaled // (acc + 1) + 1  # s/U > scaled/(acc+1)
        if jmin > limit:
            return None
        if acc and jmin == -(-scaled // acc):  # s/U <= scaled/acc
            return jmin


def _psi(t: float) -> float:
    """(1+t) log(1+t) + (1-t) log(1-t), accurately for small t too."""
    if abs(t) < 0.125:
        u = t * t
        acc = 0.0
        for j in range(10, 0, -1):  # sum of u**j / (j (2j - 1)), Horner from the top
            acc = acc * u + 1.0 / (j * (2 * j - 1))
        return acc * u
    return (1.0 + t) * math.log1p(t) + (1.0 - t) * math.log1p(-t)


def _stirlerr(y: float) -> float:
    """log(y!) - (y log y - y + log(2 pi y) / 2), for y >= TAIL_MIN."""
    y2 = y * y
    return (1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - 1.0 / (1680 * y2)) / y2) / y2) / y


def _log_r_double(m: int, m0: int, x: int, k: int, s: int) -> float:
    """log(C(M, x) / C(M, m0) / e(k)) in double precision (relative error ~1e-15)."""
    mf = float(m)
    t = (2 * x - m) / mf
    t0 = (2 * m0 - m) / mf
    a = 0.5 * mf * (_psi(t) - _psi(t0))
    b = 0.5 * (math.log1p(-t * t) - math.log1p(-t0 * t0))
    c = (_stirlerr(float(x)) + _stirlerr(float(m - x))
         - _stirlerr(float(m0)) - _stirlerr(float(m - m0)))
    log_ratio = -(a + b + c)
    j = abs(k)
    if j <= s:
        return log_ratio
    return log_ratio - (2.0 * math.log(s) - math.log(j) - math.log(j - 1))


def _cmp_exact(m: int, m0: int, x: int, k: int, s: int, num: int, w: int, prec: int) -> str:
    """Where R = C(M,x)/C(M,m0)/e(k) lies against [num, num+1) / 2**(64w), with MPFR at
    `prec` bits of absolute accuracy: "accept" (R >= top), "reject" (R <= bottom), "inside",
    or "unsure" (ask again with more precision)."""
    wp = prec + m.bit_length() + 2 * (k.bit_length() + 8) + 32
    with gmpy2.context(gmpy2.get_context(), precision=wp):
        def lg(v: int) -> gmpy2.mpfr:
            return gmpy2.lgamma(gmpy2.mpfr(v + 1))[0]

        log_r = lg(m0) + lg(m - m0) - lg(x) - lg(m - x)
        j = abs(k)
        if j > s:
            log_r -= 2 * gmpy2.log(s) - gmpy2.log(j) - gmpy2.log(j - 1)
        scale = 64 * w * gmpy2.log(2)
        top = gmpy2.log(num + 1) - scale
        bottom = gmpy2.log(num) - scale if num else gmpy2.mpfr("-inf")
        err = gmpy2.mpfr(2) ** -prec
        if log_r - err > top + err:
            return "accept"
        if log_r + err < bottom - err:
            return "reject"
        if bottom + err < log_r - err and log_r + err < top - err:
            return "inside"
        return "unsure"


def _accept(coins: _Coins, m: int, m0: int, x: int, k: int, s: int) -> bool:
    """Accept x with probability R = C(M,x)/C(M,m0)/e(k) <= 1: draw V uniform, accept iff
    V < R. V's first word is always drawn; more only while R lies inside V's interval."""
    v = coins.word()
    if (x == m0 or x == m - m0) and abs(k) <= s:
        return True  # R == 1 exactly
    if min(x, m - x) < TAIL_MIN:
        if v:
            return False  # R < 2**-64 <= V
    else:
        log_r = _log_r_double(m, m0, x, k, s)
        if math.log(v + 1) - _LOG2_64 <= log_r - ETA:
            return True
        if v and math.log(v) - _LOG2_64 >= log_r + ETA:
            return False
    num, w, prec = v, 1, 128
    while True:
        where = _cmp_exact(m, m0, x, k, s, num, w, prec)
        if where == "inside":
            num, w = (num << 64) | coins.word(), w + 1
        elif where == "unsure":
            prec *= 2
            if prec > 1 << 16:
                raise RuntimeError("OPE sampler: undecidable comparison")  # R dyadic: never
        else:
            return where == "accept"


def binomial_half(m: int, coins: _Coins) -> int:
    """An exact Binomial(M, 1/2) sample from the node's coins."""
    if m <= SMALL_M:
        n = (m + 63) // 64
        return (coins.words(n) >> (64 * n - m)).bit_count()
    # Rejection from a flat top of width 2s+1 (height 1 = the mode's mass) and two tails
    # e(k) = s**2 / (|k| (|k| - 1)), which bound C(M, m0+k)/C(M, m0) <= exp(-k(k-1)/M).
    s = isqrt(m) + 1
    m0 = m // 2
    while True:
        r = _uniform_below(coins, 4 * s + 1)
        if r < 2 * s + 1:
            k = r - s
        else:
            upper = r < 3 * s + 1
            j = _pareto_ceil(coins, s, m - m0 if upper else m0)
            if j is None:
                continue
            k = j if upper else -j
        x = m0 + k
        if 0 <= x <= m and _accept(coins, m, m0, x, k, s):
            return x


def _uniform_bits(coins: _Coins, bits: int) -> int:
    n = (bits + 63) // 64
    return coins.words(n) >> (64 * n - bits)


class OpeRef:
    """OPE from [0, 2**D) to [0, 2**R) under a 64-byte key; pure Python."""

    def __init__(self, key: bytes, d: int, r: int) -> None:
        if not 1 <= d <= r <= 4096:
            raise ValueError("need 1 <= D <= R")
        self.d, self.r = d, r
        self._prf = _Prf(key, d, r)

    def _split(self, state: int, m_size: int, e: int) -> int:
        x = binomial_half(m_size, _Coins(self._prf, state))
        half = 1 << (e - 1)
        return max(m_size - half, min(x, half))  # never more points than a half holds

    def encrypt(self, m: int) -> int:
        if not 0 <= m < 1 << self.d:
            raise ValueError("plaintext outside the OPE domain")
        state, lo, size, rlo, e, depth = self._prf.root, 0, 1 << self.d, 0, self.r, 0
        while size > 1:
            x = self._split(state, size, e)
            e -= 1
            if m < lo + x:
                bit, size = 0, x
            else:
                bit, lo, size, rlo = 1, lo + x, size - x, rlo + (1 << e)
            state = self._prf.child(state, depth, bit)
            depth += 1
        return rlo + _uniform_bits(_Coins(self._prf, state), e)

    def decrypt(self, c: int) -> int:
        if not 0 <= c < 1 << self.r:
            raise InvalidCiphertext()
        state, lo, size, rlo, e, depth = self._prf.root, 0, 1 << self.d, 0, self.r, 0
        while size > 1:
            x = self._split(state, size, e)
            e -= 1
            if c < rlo + (1 << e):
                bit, size = 0, x
            else:
                bit, lo, size, rlo = 1, lo + x, size - x, rlo + (1 << e)
            if size == 0:
                raise InvalidCiphertext()
            state = self._prf.child(state, depth, bit)
            depth += 1
        if rlo + _uniform_bits(_Coins(self._prf, state), e) != c:
            raise InvalidCiphertext()
        return lo
