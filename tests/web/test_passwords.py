"""Password hashes: self-describing scrypt, rehash only when weaker, bounded hashing."""

from __future__ import annotations

import asyncio

import pytest

from bot.web.passwords import (
    LEGACY,
    PRODUCTION,
    PasswordHashBusy,
    PasswordHasher,
    ScryptParams,
    decode,
    hash_password,
    legacy_encoded,
    needs_rehash,
    verify_password,
)

FAST = ScryptParams(log2_n=10, r=8, p=1)


def test_a_hash_carries_its_parameters_and_verifies_only_its_password():
    encoded = hash_password("correct horse battery", FAST)
    params, salt, digest = decode(encoded)
    assert encoded.startswith("scrypt$ln=10,r=8,p=1$")
    assert params == FAST and len(salt) == 16 and len(digest) == 32
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("correct horse batterz", encoded)
    assert hash_password("correct horse battery", FAST) != encoded  # a new salt each time


def test_the_production_cost_is_owasps_and_fits_hashlibs_memory_limit():
    assert PRODUCTION == ScryptParams(log2_n=17, r=8, p=1)
    assert PRODUCTION.maxmem >= 128 * 2**17 * 8
    assert verify_password("pw-at-full-cost", hash_password("pw-at-full-cost"))


def test_only_weaker_hashes_need_a_rehash():
    assert needs_rehash(hash_password("x" * 12, FAST), PRODUCTION)
    assert needs_rehash(legacy_encoded("00" * 16, "11" * 32), PRODUCTION)
    assert not needs_rehash(hash_password("x" * 12, FAST), FAST)
    assert not needs_rehash(hash_password("x" * 12, FAST), ScryptParams(10, 4, 1))  # no downgrade
    assert needs_rehash("not a hash", FAST)
    assert decode(legacy_encoded("00" * 16, "11" * 32))[0] == LEGACY


@pytest.mark.parametrize(
    "bad", ["", "scrypt$ln=17,r=8,p=1$", "bcrypt$2b$12$abc", "scrypt$ln=x,r=8,p=1$a$b"]
)
def test_malformed_hashes_are_refused(bad):
    with pytest.raises(ValueError):
        decode(bad)


async def test_hashing_beyond_the_concurrency_and_waiting_bound_is_refused_at_once():
    hasher = PasswordHasher(FAST, concurrency=1, max_waiting=1)
    results = await asyncio.gather(
        *(hasher.hash(f"password-{n:04d}") for n in range(3)), return_exceptions=True
    )
    assert [isinstance(r, PasswordHashBusy) for r in results] == [False, False, True]
    assert await hasher.verify("password-0000", results[0])  # the bound frees up again
