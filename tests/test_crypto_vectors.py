"""The crypto boundary against public test vectors (RFC 4493, RFC 4231, SP 800-38A)."""

import pytest

from license_server import crypto


def test_aes_cmac_rfc4493_vectors():
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    assert crypto.aes_cmac(key, b"").hex() == "bb1d6929e95937287fa37d129b756746"
    message = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    assert crypto.aes_cmac(key, message).hex() == "070a16b46b4d4144f79bdd9dd04a287c"


def test_hmac_sha256_rfc4231_case_2():
    tag = crypto.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert tag.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    crypto.hmac_sha256_verify(b"Jefe", b"what do ya want for nothing?", tag)
    with pytest.raises(crypto.CryptoError):
        crypto.hmac_sha256_verify(b"Jefe", b"what do ya want for nothing!", tag)


def test_aes_cbc_sp800_38a_first_block_and_round_trip():
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    iv = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    block = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    ciphertext = crypto.aes_cbc_encrypt(key, iv, block)
    assert ciphertext[:16].hex() == "7649abac8119b246cee98e9b12e9197d"
    assert len(ciphertext) == 32  # PKCS#7 adds a full block
    assert crypto.aes_cbc_decrypt(key, iv, ciphertext) == block


def test_aes_cbc_decrypt_rejects_bad_padding_and_lengths():
    key = bytes(16)
    with pytest.raises(crypto.CryptoError):
        crypto.aes_cbc_decrypt(key, bytes(16), b"short")
    with pytest.raises(crypto.CryptoError):
        crypto.aes_cbc_decrypt(key, bytes(16), bytes(16))  # decrypts to a block with invalid padding


def test_session_key_derivation_matches_the_counter_mode_construction():
    session_key = bytes(range(16))
    request = b"serialized license request"
    keys = crypto.derive_session_keys(session_key, request)
    enc_context = b"ENCRYPTION\x00" + request + b"\x00\x00\x00\x80"
    mac_context = b"AUTHENTICATION\x00" + request + b"\x00\x00\x02\x00"
    assert keys.encryption == crypto.aes_cmac(session_key, b"\x01" + enc_context)
    assert keys.server_mac == crypto.aes_cmac(session_key, b"\x01" + mac_context) + crypto.aes_cmac(
        session_key, b"\x02" + mac_context)
    assert keys.client_mac == crypto.aes_cmac(session_key, b"\x03" + mac_context) + crypto.aes_cmac(
        session_key, b"\x04" + mac_context)
    assert len(keys.encryption) == 16 and len(keys.server_mac) == len(keys.client_mac) == 32
    assert crypto.derive_session_keys(session_key, request + b"!") != keys


def test_rsa_pss_and_oaep_round_trip(keyring):
    private = keyring.service_key_pem
    public = crypto.public_key_der(private)
    signature = crypto.rsa_pss_sign(private, b"payload")
    crypto.rsa_pss_verify(public, b"payload", signature)
    with pytest.raises(crypto.CryptoError):
        crypto.rsa_pss_verify(public, b"payload!", signature)
    wrapped = crypto.rsa_oaep_wrap(public, b"k" * 16)
    assert crypto.rsa_oaep_unwrap(private, wrapped) == b"k" * 16
    with pytest.raises(crypto.CryptoError):
        crypto.rsa_oaep_unwrap(keyring.root_key_pem, wrapped)
