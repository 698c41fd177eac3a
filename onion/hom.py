"""HOM onion: Paillier with g = n + 1, n >= 2048 bits (gmpy2), CRT and fixed-base randomness.

Ciphertext bytes: the big-endian unsigned integer c, fixed width = byte length of n**2
(512 bytes for a 2048-bit n). Sum = product of ciphertexts mod n**2 (UDF cryptdb_hom_sum);
an in-place increment by k multiplies in Enc(k) (UDF cryptdb_hom_add).

Plaintexts are integers mod n; a signed m is stored as m mod n, i.e. a negative as n - |m|, and
decoded back as m - n when m > n // 2. Sums stay exact while |sum| < n / 2 (about 2**2046).

Randomness: the fixed-base variant of Damgard, Jurik and Nielsen ("A generalization of
Paillier's public-key system with applications to electronic voting", IJIS 2010). Instead of
r**n for a fresh uniform r in Z_n*, the key holds h = -x**2 mod n for a random x, and
encryption uses (h**n)**a mod n**2 = (h**a)**n for a fresh random a of ALPHA_BITS bits. That is
still an n-th power, so decryption is unchanged. Semantic security rests on DCR plus the
assumption that h**a for a short random a is indistinguishable from a uniform element of <h>
(the best known attack on a short exponent, Pollard's lambda, costs 2**(ALPHA_BITS/2) group
operations). The fixed base allows precomputed tables of (h**n)**(d * 2**(w*i)) mod p**2 and
mod q**2 (CRT with the secret factors): one encryption costs 2 * ALPHA_BITS / WINDOW
multiplications modulo 2048-bit numbers and no squarings. docs/onion-format.md has the details.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable, Iterable

import gmpy2
from gmpy2 import mpz

from onion.errors import InvalidCiphertext

N_BITS = 2048
ALPHA_BITS = 512  # lambda/kangaroo on a 512-bit exponent costs 2**256 (factoring n: ~2**112)
WINDOW = 8
VERSION = 0x01
_MR_ROUNDS = 40


def _width(n2: int) -> int:
    return (int(n2).bit_length() + 7) // 8


class PaillierPublicKey:
    """What the server may know: n (the UDFs take n**2). Adds ciphertexts; cannot decrypt."""

    __slots__ = ("n", "n2", "width")

    def __init__(self, n: int) -> None:
        if n.bit_length() < N_BITS or n % 2 == 0:
            raise ValueError("Paillier modulus must be odd and at least 2048 bits")
        self.n = mpz(n)
        self.n2 = self.n * self.n
        self.width = _width(self.n2)

    def n2_bytes(self) -> bytes:
        """n**2 big-endian, the modulus argument of cryptdb_hom_sum / cryptdb_hom_add."""
        return int(self.n2).to_bytes(self.width, "big")

    def encode(self, m: int) -> mpz:
        """Signed integer -> residue mod n (negatives as n - |m|)."""
        if not -(self.n // 2) <= m <= self.n // 2:
            raise ValueError("plaintext out of the Paillier range")
        return mpz(m) % self.n

    def decode(self, r: int) -> int:
        return int(r - self.n) if r > self.n // 2 else int(r)

    def _load(self, c: bytes) -> mpz:
        if len(c) != self.width:
            raise InvalidCiphertext()
        v = mpz(int.from_bytes(c, "big"))
        if v == 0 or v >= self.n2:
            raise InvalidCiphertext()
        return v

    def _dump(self, v: mpz) -> bytes:
        return int(v).to_bytes(self.width, "big")

    def add(self, a: bytes, b: bytes) -> bytes:
        """Enc(x) (+) Enc(y) = Enc(x + y): what cryptdb_hom_add computes."""
        return self._dump(gmpy2.f_mod(self._load(a) * self._load(b), self.n2))

    def sum(self, ciphertexts: Iterable[bytes]) -> bytes:
        """Product mod n**2 of the ciphertexts; Enc(0) with r = 1 (i.e. 1) when empty."""
        acc = mpz(1)
        for c in ciphertexts:
            acc = gmpy2.f_mod(acc * self._load(c), self.n2)
        return self._dump(acc)

    def encrypt_public(self, m: int, r: int | None = None) -> bytes:
        """Textbook Enc(m) = (1 + m n) r**n mod n**2 with only the public key (slow: ~9 ms)."""
        if r is None:
            while True:
                r = secrets.randbelow(int(self.n))
                if r > 1 and gmpy2.gcd(r, self.n) == 1:
                    break
        c = (1 + self.encode(m) * self.n) * gmpy2.powmod(r, self.n, self.n2)
        return self._dump(gmpy2.f_mod(c, self.n2))


def _fixed_base_table(base: mpz, mod: mpz, bits: int, w: int) -> list[list[mpz]]:
    """table[i][d] = base**(d * 2**(w*i)) mod mod, for d < 2**w."""
    table = []
    b = base
    for _ in range((bits + w - 1) // w):
        row = [mpz(1), b]
        for _ in range(2, 1 << w):
            row.append(gmpy2.f_mod(row[-1] * b, mod))
        table.append(row)
        b = gmpy2.f_mod(row[-1] * b, mod)  # base**(2**(w*(i+1)))
    return table


def _fixed_base_pow(table: list[list[mpz]], e: int, mod: mpz, w: int) -> mpz:
    acc = mpz(1)
    mask = (1 << w) - 1
    i = 0
    while e:
        d = e & mask
        if d:
            acc = gmpy2.f_mod(acc * table[i][d], mod)
        e >>= w
        i += 1
    return acc


class PaillierPrivateKey:
    """p, q and the randomness base h; encrypts (fast path) and decrypts with CRT."""

    __slots__ = ("p", "q", "h", "public_key", "_p2", "_q2", "_q2inv", "_hp", "_hq", "_qinv",
                 "_tables")

    def __init__(self, p: int, q: int, h: int) -> None:
        p, q, h = mpz(p), mpz(q), mpz(h)
        if p == q or p < 3 or q < 3:
            raise ValueError("bad Paillier factors")
        self.p, self.q, self.h = p, q, h
        n = p * q
        if not 1 < h < n or gmpy2.gcd(h, n) != 1 or gmpy2.gcd(n, (p - 1) * (q - 1)) != 1:
            raise ValueError("bad Paillier key")
        self.public_key = PaillierPublicKey(int(n))
        self._p2, self._q2 = p * p, q * q
        self._q2inv = gmpy2.invert(self._q2, self._p2)
        self._qinv = gmpy2.invert(q, p)
        # h_p = L_p(g**(p-1) mod p**2)**-1 mod p (Paillier's CRT decryption constants).
        self._hp = gmpy2.invert((gmpy2.powmod(n + 1, p - 1, self._p2) - 1) // p, p)
        self._hq = gmpy2.invert((gmpy2.powmod(n + 1, q - 1, self._q2) - 1) // q, q)
        self._tables: tuple[list[list[mpz]], list[list[mpz]]] | None = None

    # -- key generation and serialization -------------------------------------------------

    @classmethod
    def generate(cls, bits: int = N_BITS) -> PaillierPrivateKey:
        return cls._generate_from_rng(bits, secrets.randbits)

    @classmethod
    def _generate_from_rng(cls, bits: int, randbits: Callable[[int], int]) -> PaillierPrivateKey:
        if bits < N_BITS or bits % 2:
            raise ValueError("Paillier modulus must be an even number of bits >= 2048")
        half = bits // 2
        while True:
            p, q = _prime(half, randbits), _prime(half, randbits)
            n = p * q
            if p != q and n.bit_length() == bits and gmpy2.gcd(n, (p - 1) * (q - 1)) == 1:
                break
        while True:
            x = mpz(randbits(bits)) % n
            if x > 1 and gmpy2.gcd(x, n) == 1:
                break
        return cls(int(p), int(q), int(gmpy2.f_mod(-x * x, n)))

    def to_bytes(self) -> bytes:
        """0x01 || u16 L || p (L bytes) || q (L bytes) || h (2L bytes), all big-endian."""
        size = max(_width(self.p), _width(self.q))
        return (bytes([VERSION]) + struct.pack(">H", size) + int(self.p).to_bytes(size, "big")
                + int(self.q).to_bytes(size, "big") + int(self.h).to_bytes(2 * size, "big"))

    @classmethod
    def from_bytes(cls, data: bytes) -> PaillierPrivateKey:
        if len(data) < 3 or data[0] != VERSION:
            raise ValueError("not a Paillier private key")
        (size,) = struct.unpack(">H", data[1:3])
        if len(data) != 3 + 4 * size:
            raise ValueError("not a Paillier private key")
        p = int.from_bytes(data[3 : 3 + size], "big")
        q = int.from_bytes(data[3 + size : 3 + 2 * size], "big")
        h = int.from_bytes(data[3 + 2 * size :], "big")
        if not (gmpy2.is_prime(p, _MR_ROUNDS) and gmpy2.is_prime(q, _MR_ROUNDS)):
            raise ValueError("not a Paillier private key")
        return cls(p, q, h)

    # -- encryption -------------------------------------------------------------------------

    def _ensure_tables(self) -> tuple[list[list[mpz]], list[list[mpz]]]:
        if self._tables is None:
            n = self.public_key.n
            hp = gmpy2.powmod(self.h, n, self._p2)  # h**n mod p**2
            hq = gmpy2.powmod(self.h, n, self._q2)
            self._tables = (
                _fixed_base_table(hp, self._p2, ALPHA_BITS, WINDOW),
                _fixed_base_table(hq, self._q2, ALPHA_BITS, WINDOW),
            )
        return self._tables

    def precompute(self) -> None:
        """Builds the fixed-base tables now (~0.2 s, ~9 MB) instead of at the first encrypt."""
        self._ensure_tables()

    def encrypt(self, m: int) -> bytes:
        return self._encrypt_from_parts(m, secrets.randbits(ALPHA_BITS))

    def _encrypt_from_parts(self, m: int, alpha: int) -> bytes:
        """Enc(m) = (1 + m n) * (h**n)**alpha mod n**2, computed mod p**2 and q**2."""
        if not 0 <= alpha < 1 << ALPHA_BITS:
            raise ValueError("alpha out of range")
        pub = self.public_key
        tp, tq = self._ensure_tables()
        gm = 1 + pub.encode(m) * pub.n  # g**m = 1 + m n mod n**2 since g = n + 1
        cp = gmpy2.f_mod(gm * _fixed_base_pow(tp, alpha, self._p2, WINDOW), self._p2)
        cq = gmpy2.f_mod(gm * _fixed_base_pow(tq, alpha, self._q2, WINDOW), self._q2)
        c = cq + self._q2 * gmpy2.f_mod((cp - cq) * self._q2inv, self._p2)
        return pub._dump(c)

    # -- decryption -------------------------------------------------------------------------

    def decrypt(self, c: bytes) -> int:
        """The signed plaintext; InvalidCiphertext for anything not a ciphertext under n."""
        pub = self.public_key
        v = pub._load(c)
        if gmpy2.gcd(v, pub.n) != 1:
            raise InvalidCiphertext()
        p, q = self.p, self.q
        mp = gmpy2.f_mod((gmpy2.powmod(v, p - 1, self._p2) - 1) // p * self._hp, p)
        mq = gmpy2.f_mod((gmpy2.powmod(v, q - 1, self._q2) - 1) // q * self._hq, q)
        m = mq + q * gmpy2.f_mod((mp - mq) * self._qinv, p)
        return pub.decode(m)


def _prime(bits: int, randbits: Callable[[int], int]) -> mpz:
    """A random prime of exactly `bits` bits with the top two bits set (so p*q has 2*bits)."""
    while True:
        c = mpz(randbits(bits)) | (3 << (bits - 2)) | 1
        if gmpy2.is_prime(c, _MR_ROUNDS):
            return c
