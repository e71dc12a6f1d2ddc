"""ECC-256 ElGamal over P-256, as PlayReady uses it (pure integer arithmetic).

PlayReady encrypts a *point*: ``C1 = k*G``, ``C2 = M + k*Q`` for the
recipient's public point ``Q``; ciphertext ``C1.x | C1.y | C2.x | C2.y``
(4 x 32 bytes, big-endian). Decryption is ``M = C2 - d*C1``. The message of a
content key is the point whose x coordinate is ``integrity key | content key``
(the integrity key is chosen so that x lies on the curve); the message of a
challenge is a random point whose x gives the AES IV (first half) and key
(second half) of ``EncryptedData``.

Points here are 64 bytes ``X | Y`` (no 0x04 prefix); private keys are integers.
"""

from __future__ import annotations

import secrets

from license_server.crypto import CryptoError

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
     0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)
CIPHERTEXT_BYTES = 128

Point = tuple[int, int] | None  # None is the point at infinity


def _on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def _add(p1: Point, p2: Point) -> Point:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        slope = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (slope * slope - x1 - x2) % P
    return x3, (slope * (x1 - x3) - y1) % P


def _neg(point: Point) -> Point:
    return None if point is None else (point[0], (-point[1]) % P)


def _jdouble(x: int, y: int, z: int) -> tuple[int, int, int]:
    if not y:
        return 0, 1, 0
    ysq = y * y % P
    s = 4 * x * ysq % P
    zsq = z * z % P
    m = 3 * (x - zsq) * (x + zsq) % P  # a = -3
    nx = (m * m - 2 * s) % P
    return nx, (m * (s - nx) - 8 * ysq * ysq) % P, 2 * y * z % P


def _jadd_affine(x1: int, y1: int, z1: int, x2: int, y2: int) -> tuple[int, int, int]:
    if not z1:
        return x2, y2, 1
    z1sq = z1 * z1 % P
    u2, s2 = x2 * z1sq % P, y2 * z1sq * z1 % P
    h, r = (u2 - x1) % P, (s2 - y1) % P
    if not h:
        return _jdouble(x1, y1, z1) if not r else (0, 1, 0)
    hsq = h * h % P
    hcu = hsq * h % P
    v = x1 * hsq % P
    nx = (r * r - hcu - 2 * v) % P
    return nx, (r * (v - nx) - y1 * hcu) % P, z1 * h % P


def _mul(k: int, point: Point) -> Point:
    """Scalar multiplication (Jacobian double-and-add, affine result)."""
    if point is None or k % N == 0:
        return None
    px, py = point
    x, y, z = 0, 1, 0
    for bit in bin(k % N)[2:]:
        x, y, z = _jdouble(x, y, z)
        if bit == "1":
            x, y, z = _jadd_affine(x, y, z, px, py)
    if not z:
        return None
    zinv = pow(z, -1, P)
    zinv2 = zinv * zinv % P
    return x * zinv2 % P, y * zinv2 * zinv % P


def encode_point(point: Point) -> bytes:
    if point is None:
        raise CryptoError()
    return point[0].to_bytes(32, "big") + point[1].to_bytes(32, "big")


def decode_point(data: bytes) -> tuple[int, int]:
    """A 64-byte ``X | Y`` (or 65-byte ``04 | X | Y``) point on P-256."""
    if len(data) == 65 and data[0] == 4:
        data = data[1:]
    if len(data) != 64:
        raise CryptoError()
    x, y = int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big")
    if not _on_curve(x, y):
        raise CryptoError()
    return x, y


def public_point(private: int) -> bytes:
    return encode_point(_mul(private, G))


def point_for_x(x_bytes: bytes) -> bytes | None:
    """The point with this 32-byte x coordinate (either y), or None if x is not on the curve."""
    x = int.from_bytes(x_bytes, "big")
    if len(x_bytes) != 32 or x >= P:
        return None
    rhs = (x * x * x + A * x + B) % P
    y = pow(rhs, (P + 1) // 4, P)  # P = 3 mod 4
    return encode_point((x, y)) if y * y % P == rhs else None


def random_point() -> bytes:
    return public_point(1 + secrets.randbelow(N - 1))


def encrypt(recipient: bytes, message_point: bytes) -> bytes:
    """ElGamal-encrypt a 64-byte point to the recipient's public point."""
    q, m = decode_point(recipient), decode_point(message_point)
    k = 1 + secrets.randbelow(N - 1)
    return encode_point(_mul(k, G)) + encode_point(_add(m, _mul(k, q)))


def decrypt(private: int, ciphertext: bytes) -> bytes:
    """The 64-byte message point; :class:`CryptoError` if the ciphertext is not two curve points."""
    if len(ciphertext) != CIPHERTEXT_BYTES:
        raise CryptoError()
    c1, c2 = decode_point(ciphertext[:64]), decode_point(ciphertext[64:])
    return encode_point(_add(c2, _neg(_mul(private, c1))))


def encrypt_key_pair(recipient: bytes, integrity_key: bytes | None, content_key: bytes) -> tuple[bytes, bytes]:
    """Encrypt ``integrity key | content key`` as a point; returns (integrity key, ciphertext).

    Without an ``integrity_key`` a random one is drawn until the pair is an x on the curve.
    """
    for _ in range(256):
        ci = integrity_key if integrity_key is not None else secrets.token_bytes(16)
        point = point_for_x(ci + content_key)
        if point is not None:
            return ci, encrypt(recipient, point)
        if integrity_key is not None:
            break
    raise CryptoError()
