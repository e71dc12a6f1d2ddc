"""Common Encryption (ISO/IEC 23001-7) sample crypto: the named AES operations.

Two schemes are supported, as the spec defines them:

* ``cenc``: AES-128 in CTR mode. The 16-byte counter block is the sample IV
  (8 bytes IVs are padded with 8 zero bytes). With subsamples, only the
  protected ranges go through the cipher and clear bytes do not advance the
  counter: the protected ranges of one sample form one continuous keystream.
* ``cbcs``: AES-128 in CBC mode with a pattern of ``crypt_byte_block``
  encrypted 16-byte blocks followed by ``skip_byte_block`` clear ones, applied
  to each protected range. The IV (usually the constant IV of ``tenc``) is
  reset at the start of every subsample; the encrypted blocks of one range form
  one CBC chain; a trailing partial block stays clear. A 0:0 pattern (audio)
  means every complete block of the range is encrypted.

The media parser (``device_emulator.media``) turns fMP4 boxes into
:class:`ProtectedSample` values; whoever holds the key (a software keystore or
the emulated TEE) calls :func:`decrypt_sample`.

Speed: ``cenc`` streams each protected range through one CTR context and joins
the clear and decrypted pieces with one copy (no copy of the input first, no
copy of a buffer last); the AES object of the last key is reused; ``cbcs`` gathers a range's pattern
blocks with one numpy strided view (or index array), runs one CBC call over
them and scatters the result back, instead of slicing block by block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16
SCHEMES = ("cenc", "cbcs")


class CencError(Exception):
    """A sample description is inconsistent (sizes, IV length, scheme)."""


@dataclass(frozen=True)
class ProtectedSample:
    """One encrypted sample and the parameters needed to decrypt it."""

    scheme: str  # "cenc" | "cbcs"
    iv: bytes  # 8 or 16 bytes
    data: bytes = field(repr=False)
    subsamples: tuple[tuple[int, int], ...] = ()  # (clear bytes, protected bytes); empty = whole sample
    crypt_byte_block: int = 0
    skip_byte_block: int = 0


# ------------------------------------------------------------ AES operations

def aes_ctr_crypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CTR (encrypt = decrypt) from the counter block made of ``iv``."""
    if len(iv) not in (8, 16):
        raise CencError(f"a cenc IV has 8 or 16 bytes, not {len(iv)}")
    counter = iv.ljust(BLOCK, b"\x00")
    ctx = Cipher(algorithms.AES(key), modes.CTR(counter)).decryptor()
    return ctx.update(data) + ctx.finalize()


def aes_cbc_decrypt_blocks(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CBC decryption of whole blocks, no padding."""
    if len(data) % BLOCK:
        raise CencError("CBC input is not a whole number of blocks")
    ctx = Cipher(_aes(key), modes.CBC(_iv16(iv))).decryptor()
    return ctx.update(data) + ctx.finalize()


def aes_cbc_encrypt_blocks(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CBC encryption of whole blocks, no padding (test vectors, packaging checks)."""
    if len(data) % BLOCK:
        raise CencError("CBC input is not a whole number of blocks")
    ctx = Cipher(algorithms.AES(key), modes.CBC(_iv16(iv))).encryptor()
    return ctx.update(data) + ctx.finalize()


def _iv16(iv: bytes) -> bytes:
    if len(iv) not in (8, 16):
        raise CencError(f"a cbcs IV has 8 or 16 bytes, not {len(iv)}")
    return iv.ljust(BLOCK, b"\x00")


# ------------------------------------------------------------- sample level

def decrypt_sample(key: bytes, sample: ProtectedSample) -> bytes:
    """The clear bytes of ``sample`` (same length as its data)."""
    return _transform(key, sample, decrypt=True)


def encrypt_sample(key: bytes, sample: ProtectedSample) -> bytes:
    """Inverse of :func:`decrypt_sample` (``sample.data`` holds clear bytes)."""
    return _transform(key, sample, decrypt=False)


def _ranges(sample: ProtectedSample) -> list[tuple[int, int]]:
    """(offset, length) of each protected range; checks the subsamples cover the sample."""
    if not sample.subsamples:
        return [(0, len(sample.data))]
    ranges, offset = [], 0
    for clear, protected in sample.subsamples:
        offset += clear
        ranges.append((offset, protected))
        offset += protected
    if offset != len(sample.data):
        raise CencError(f"subsamples cover {offset} bytes but the sample has {len(sample.data)}")
    return ranges


def _transform(key: bytes, sample: ProtectedSample, *, decrypt: bool) -> bytes:
    if sample.scheme not in SCHEMES:
        raise CencError(f"unsupported protection scheme {sample.scheme!r}")
    ranges = _ranges(sample)
    if sample.scheme == "cenc":
        return _ctr_ranges(key, sample.iv, sample.data, ranges)
    return _cbcs_ranges(key, sample, ranges, aes_cbc_decrypt_blocks if decrypt else aes_cbc_encrypt_blocks)


def _ctr_ranges(key: bytes, iv: bytes, data: bytes, ranges: list[tuple[int, int]]) -> bytes:
    """CTR over the protected ranges as one keystream; the clear and decrypted pieces are joined once."""
    if len(iv) not in (8, 16):
        raise CencError(f"a cenc IV has 8 or 16 bytes, not {len(iv)}")
    ctx = Cipher(_aes(key), modes.CTR(iv.ljust(BLOCK, b"\x00"))).decryptor()
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    position = 0
    for offset, length in ranges:
        if offset > position:
            parts.append(view[position:offset])
        parts.append(ctx.update(view[offset:offset + length]))  # CTR is a stream: partial blocks carry on
        position = offset + length
    if position < len(data):
        parts.append(view[position:])
    return b"".join(parts)


_last_key: tuple[bytes, algorithms.AES] | None = None


def _aes(key: bytes) -> algorithms.AES:
    """The AES algorithm object of ``key``; the last one is reused (a player decrypts many samples per key)."""
    global _last_key
    last = _last_key
    if last is None or last[0] != key:
        last = _last_key = (bytes(key), algorithms.AES(key))
    return last[1]


def _cbcs_ranges(key: bytes, sample: ProtectedSample, ranges: list[tuple[int, int]],
                 cbc: Callable[[bytes, bytes, bytes], bytes]) -> bytes:
    """CBC over the pattern blocks of each range (IV reset per range), gathered and scattered with numpy."""
    out = np.frombuffer(bytearray(sample.data), dtype=np.uint8)
    crypt, skip = sample.crypt_byte_block, sample.skip_byte_block
    if skip and not crypt:
        raise CencError("a cbcs pattern with skip blocks needs crypt blocks")
    for offset, length in ranges:
        full = length // BLOCK
        if not full:
            continue
        blocks = out[offset:offset + full * BLOCK].reshape(full, BLOCK)
        if skip == 0:  # 0:0 (or n:0): every complete block, one contiguous run
            blocks[:] = np.frombuffer(cbc(key, sample.iv, blocks.tobytes()), dtype=np.uint8).reshape(full, BLOCK)
            continue
        period = crypt + skip
        index: slice | np.ndarray = (slice(0, None, period) if crypt == 1
                                     else np.flatnonzero(np.arange(full) % period < crypt))
        chosen = blocks[index]
        done = cbc(key, sample.iv, chosen.tobytes())
        blocks[index] = np.frombuffer(done, dtype=np.uint8).reshape(chosen.shape)
    return out.tobytes()


def _pattern_blocks(full_blocks: int, crypt: int, skip: int) -> list[int]:
    """Indices of the encrypted blocks of a protected range of ``full_blocks`` blocks (reference, tests)."""
    if skip == 0:  # 0:0 (or n:0) means every complete block is encrypted
        return list(range(full_blocks))
    if crypt == 0:
        raise CencError("a cbcs pattern with skip blocks needs crypt blocks")
    period = crypt + skip
    return [b for b in range(full_blocks) if b % period < crypt]
