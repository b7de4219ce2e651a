"""Password hashing for agent accounts: scrypt at OWASP's cost, off the event loop, bounded.

A stored hash carries its own parameters: ``scrypt$ln=17,r=8,p=1$<salt>$<digest>`` (salt and
digest in unpadded URL-safe base64; ``ln`` is log2 of N). The production cost is OWASP's
recommendation, N=2^17, r=8, p=1 (128 MiB and roughly half a second per hash on one core).
:func:`needs_rehash` says when a stored hash is weaker than the configured parameters, so the
account store can rehash it on the next successful login (this covers the first format, salt and
hash in separate hex fields at N=2^14, read here as :data:`LEGACY`).

:class:`PasswordHasher` runs each hash in a worker thread and lets at most ``concurrency`` run at
once (each one holds 128 MiB); callers beyond ``max_waiting`` get :class:`PasswordHashBusy` at
once instead of queueing, so a flood of logins cannot exhaust memory or threads.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

SALT_BYTES = 16
DIGEST_BYTES = 32
_FORMAT = re.compile(
    r"scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,2})\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)"
)


@dataclass(frozen=True)
class ScryptParams:
    """scrypt's cost: N = 2**log2_n, block size r, parallelism p."""

    log2_n: int
    r: int
    p: int

    @property
    def n(self) -> int:
        return 2**self.log2_n

    @property
    def maxmem(self) -> int:
        """The memory limit hashlib must allow: scrypt needs 128*N*r*p bytes, plus headroom."""
        return 128 * self.n * self.r * self.p + 128 * self.r * (self.p + 2) + 16 * 1024 * 1024

    def weaker_than(self, other: ScryptParams) -> bool:
        return self.log2_n < other.log2_n or self.r < other.r or self.p < other.p


PRODUCTION = ScryptParams(log2_n=17, r=8, p=1)  # OWASP Password Storage Cheat Sheet
LEGACY = ScryptParams(log2_n=14, r=8, p=1)  # the first format (separate salt and hash fields)


class PasswordHashBusy(RuntimeError):
    """Too many password hashes are running or waiting in this process; retry shortly."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, params: ScryptParams) -> bytes:
    return hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=params.maxmem,
        dklen=DIGEST_BYTES,
    )


def encode(params: ScryptParams, salt: bytes, digest: bytes) -> str:
    return f"scrypt$ln={params.log2_n},r={params.r},p={params.p}${_b64(salt)}${_b64(digest)}"


def decode(encoded: str) -> tuple[ScryptParams, bytes, bytes]:
    """Parameters, salt and digest of a stored hash (ValueError when it is not one)."""
    match = _FORMAT.fullmatch(encoded or "")
    if match is None:
        raise ValueError("not a scrypt hash of this project")
    params = ScryptParams(int(match[1]), int(match[2]), int(match[3]))
    return params, _unb64(match[4]), _unb64(match[5])


def legacy_encoded(salt_hex: str, hash_hex: str) -> str:
    """The first format (hex salt and hash fields, N=2^14) in today's encoding."""
    return encode(LEGACY, bytes.fromhex(salt_hex), bytes.fromhex(hash_hex))


def hash_password(password: str, params: ScryptParams = PRODUCTION) -> str:
    """A new salted hash of ``password`` with ``params`` (slow on purpose; blocking)."""
    salt = secrets.token_bytes(SALT_BYTES)
    return encode(params, salt, _scrypt(password, salt, params))


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches the stored hash (constant-time compare; blocking)."""
    params, salt, digest = decode(encoded)
    return hmac.compare_digest(_scrypt(password, salt, params), digest)


def needs_rehash(encoded: str, params: ScryptParams) -> bool:
    """True when the stored hash is weaker than ``params`` (never downgrades a stronger one)."""
    try:
        stored, _salt, _digest = decode(encoded)
    except ValueError:
        return True
    return stored.weaker_than(params)


class PasswordHasher:
    """scrypt in worker threads, at most ``concurrency`` at once and ``max_waiting`` queued."""

    def __init__(
        self, params: ScryptParams = PRODUCTION, concurrency: int = 2, max_waiting: int = 32
    ) -> None:
        self.params = params
        self._concurrency = max(1, concurrency)
        self._max_waiting = max(0, max_waiting)
        self._semaphore: asyncio.Semaphore | None = None
        self._pending = 0

    async def _run(self, function, *args):  # noqa: ANN001, ANN202 (a private helper)
        if self._pending >= self._concurrency + self._max_waiting:
            raise PasswordHashBusy("the login service is busy; try again in a few seconds")
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._concurrency)
        self._pending += 1
        try:
            async with self._semaphore:
                return await asyncio.to_thread(function, *args)
        finally:
            self._pending -= 1

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password, self.params)

    async def verify(self, password: str, encoded: str) -> bool:
        return await self._run(verify_password, password, encoded)

    async def burn(self, password: str) -> None:
        """Spend what a verification costs, for a login that cannot succeed (no timing oracle)."""
        await self._run(hash_password, password, self.params)

    def needs_rehash(self, encoded: str) -> bool:
        return needs_rehash(encoded, self.params)
