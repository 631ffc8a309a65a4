"""Password hashing with Argon2id (RFC 9106), the current recommendation for stored passwords."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_app_context

# RFC 9106's second recommended option (memory-constrained): 64 MiB, 3 passes. A test suite may lower
# them through config (every hash records its own parameters, so verification never depends on these).
DEFAULT_TIME_COST = 3
DEFAULT_MEMORY_KIB = 64 * 1024


@lru_cache(maxsize=4)
def _hasher_for(time_cost: int, memory_kib: int) -> tuple[PasswordHasher, str]:
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
    # Verifying against this when the username is unknown costs the same time as a real check.
    return hasher, hasher.hash("gridcase-timing-equaliser")


def _hasher() -> tuple[PasswordHasher, str]:
    if has_app_context():
        cfg = current_app.config
        return _hasher_for(int(cfg.get("ARGON2_TIME_COST", DEFAULT_TIME_COST)),
                           int(cfg.get("ARGON2_MEMORY_KIB", DEFAULT_MEMORY_KIB)))
    return _hasher_for(DEFAULT_TIME_COST, DEFAULT_MEMORY_KIB)


def hash_password(password: str) -> str:
    return _hasher()[0].hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; an unknown user (``None``) takes as long as a wrong password."""
    hasher, dummy = _hasher()
    try:
        return hasher.verify(stored_hash or dummy, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher()[0].check_needs_rehash(stored_hash)
