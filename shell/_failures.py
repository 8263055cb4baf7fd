"""Failure memory's effects (docs/design.md §15): where remembered failures live.

Core decides (`core._failures`); this module keeps the entries where the
token would have gone, draws the salt and the jitter, and computes the slow
fingerprint of the secret. A slot is one place for one token's entry:

- `FileSlot`: `failure.json` in the token's folder below the cache dir (a
  machine credential: `clients/<key>/`; an fctl profile's stack:
  `fctl/<hash of its folder>/`, never the fctl stack folder itself), under
  the file rules of tokens: 0600, atomic, owner checks, a corrupt one a miss;
- `_redis.RedisFailureSlot`: a key beside the token's, expiring when the
  entry's window ends.

The fingerprint is `hashlib.scrypt` of the secret with a random salt stored
beside it: a guess at the secret costs what a password guess costs. It is
computed only when a failure is written or one is found remembered.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from returns.result import Failure, Result
from stacktoken.core._errors import LocalError
from stacktoken.core._failures import (
    FailureKnobs,
    FailureMemory,
    Remembered,
    decode_remembered,
    encode_remembered,
)
from stacktoken.core._time import datetime

from ._files import Place, read_private, remove_file, write_atomic

__all__ = [
    "FAILURE_FILE",
    "FCTL_FAILURES",
    "FailureSlot",
    "FileSlot",
    "RedisFailureSlot",
    "client_failure",
    "fctl_failure_place",
    "failure_memory",
    "failure_places",
    "failures_of",
    "remembered_failure",
    "slow_fingerprint",
    "stack_failure",
]

FAILURE_FILE = "failure.json"
#: The folder below the cache dir of fctl profiles' failure entries.
FCTL_FAILURES = "fctl"

# scrypt's cost: 16 MiB and some tens of milliseconds a guess (RFC 7914's
# interactive-login figures), paid only while a failure is remembered.
_SCRYPT_N = 1 << 14
_SCRYPT_R = 8
_SCRYPT_P = 1
_MAX_ENTRY_BYTES = 64 * 1024  # an entry is a few hundred bytes


class FailureSlot(Protocol):
    """One place of one token's remembered failure."""

    @property
    def name(self) -> str: ...
    def load(self) -> bytes | str: ...
    def save(self, data: bytes, keep_ms: int) -> Result[None, LocalError]: ...
    def delete(self) -> Result[bool, LocalError]: ...


class FileSlot:
    """`failure.json` at `place` (its folders made 0700 when it is written)."""

    name = "disk"

    def __init__(self, place: Place, *, log: Callable[[str], None]) -> None:
        self.place = place
        self._log = log

    def load(self) -> bytes | str:
        read = read_private(self.place, log=self._log)
        return read if isinstance(read, str) else read[0]

    def save(self, data: bytes, keep_ms: int) -> Result[None, LocalError]:
        return write_atomic(self.place, data, log=self._log)

    def delete(self) -> Result[bool, LocalError]:
        return remove_file(self.place)


def slow_fingerprint(secret: str | None, salt: str) -> str:
    """scrypt of `secret` under the hex `salt`, in hex (empty without a secret)."""
    if secret is None:
        return ""
    digest = hashlib.scrypt(
        secret.encode("utf-8", "surrogatepass"),
        salt=bytes.fromhex(salt),
        n=_SCRYPT_N,
        r=_SCRYPT_R,
        p=_SCRYPT_P,
        dklen=32,
    )
    return digest.hex()


def _draw() -> tuple[str, float]:
    return os.urandom(16).hex(), random.random()  # noqa: S311 - jitter, not a secret


def failure_memory(
    slots: tuple[FailureSlot, ...],
    *,
    secret: Callable[[], str | None],
    clock: Callable[[], datetime],
    log: Callable[[str], None],
    knobs: FailureKnobs | None = None,
    owner: str = "",
) -> FailureMemory:
    """Core's memory over `slots` (the host's first): the latest-ending entry
    found is the one that counts; writes go to every slot, best effort."""

    def read() -> Remembered | None:
        found: Remembered | None = None
        for slot in slots:
            entry = _loaded(slot, log)
            if entry is not None and (found is None or entry.until > found.until):
                found = entry
        return found

    def write(entry: Remembered) -> None:
        keep_ms = max(1, int((entry.until - clock()).total_seconds() * 1000))
        data = encode_remembered(entry)
        for slot in slots:
            saved = slot.save(data, keep_ms)
            if isinstance(saved, Failure):
                log(f"{slot.name} failure entry not written: {saved.failure().message}")

    def forget() -> None:
        for slot in slots:
            if slot.delete().value_or(False):
                log(f"{slot.name} failure entry forgotten after a success")

    return FailureMemory(
        read=read,
        fingerprint=lambda salt: slow_fingerprint(secret(), salt),
        write=write,
        forget=forget,
        draw=_draw,
        knobs=knobs if knobs is not None else FailureKnobs(),
        owner=owner,
    )


def _loaded(slot: FailureSlot, log: Callable[[str], None]) -> Remembered | None:
    data = slot.load()
    if isinstance(data, str):
        if data != "no such file":
            log(f"{slot.name} failure entry ignored: {data}")
        return None
    entry = decode_remembered(data)
    if isinstance(entry, str):
        log(f"{slot.name} failure entry ignored: {entry}")
        return None
    return entry


def remembered_failure(slot: FailureSlot) -> Remembered | None:
    """The failure remembered in `slot` (for `status`), or None; no fingerprint computed."""
    return _loaded(slot, lambda _: None)


def fctl_failure_place(cache_dir: str, stack_root: str, folder: tuple[str, ...]) -> Place:
    """Where the failure entry of an fctl stack lives: below the cache dir,
    in a folder named by a hash of the stack folder's path (never the secret)."""
    path = os.path.join(stack_root, *folder)
    key = hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()
    return Place(root=cache_dir, parts=(FCTL_FAILURES, key, FAILURE_FILE))


def failure_places(cache_dir: str) -> Iterator[tuple[Place, Remembered]]:
    """Every failure entry below `cache_dir` that reads, with its place (`cache clear`)."""
    for kind in ("clients", FCTL_FAILURES):
        try:
            names = sorted(os.listdir(os.path.join(cache_dir, kind)))
        except OSError:
            continue
        for name in names:
            place = Place(root=cache_dir, parts=(kind, name, FAILURE_FILE))
            entry = remembered_failure(FileSlot(place, log=lambda _: None))
            if entry is not None:
                yield place, entry


class RedisFailureSlot:
    """The key `key` beside a Redis token's (`<token key>:failure`), expiring with its
    window. `store` is a `_redis.RedisStore`; its breaker and log are shared."""

    name = "redis"

    def __init__(self, store: Any, key: str) -> None:
        self._store = store
        self._key = key

    def load(self) -> bytes | str:
        store = self._store
        if skipped := store._skipped():
            return str(skipped)
        try:
            data = store._redis.getrange(self._key, 0, _MAX_ENTRY_BYTES)
        except Exception as error:
            store._log(store._trouble("failure read", error))
            return "redis unavailable"
        if not isinstance(data, bytes) or not data:
            return "no such file"  # no entry: said nothing of, as a missing file
        if len(data) > _MAX_ENTRY_BYTES:
            return "redis failure value too large: not read"
        return data

    def save(self, data: bytes, keep_ms: int) -> Result[None, LocalError]:
        from returns.result import Success

        store = self._store
        if skipped := store._skipped():
            return Failure(LocalError(message=str(skipped)))
        try:
            store._redis.set(self._key, data, px=keep_ms)
        except Exception as error:
            return Failure(LocalError(message=store._trouble("failure write", error)))
        return Success(None)

    def delete(self) -> Result[bool, LocalError]:
        from returns.result import Success

        store = self._store
        if skipped := store._skipped():
            return Failure(LocalError(message=str(skipped)))
        try:
            return Success(bool(store._redis.delete(self._key)))
        except Exception as error:
            return Failure(LocalError(message=store._trouble("failure delete", error)))


def failures_of(cache_dir: str, owner: tuple[str | None, ...]) -> list[Place]:
    """The failure entries below `cache_dir` whose owner (`client <id> <stack URI>`,
    `fctl <profile> <organization> <stack>`) matches `owner`, None matching any part."""
    found = []
    for place, entry in failure_places(cache_dir):
        parts = entry.owner.split(" ")
        if len(parts) == len(owner) and all(
            wanted in (None, part) for wanted, part in zip(owner, parts, strict=True)
        ):
            found.append(place)
    return found


def client_failure(
    cache_dir: str, stack_uri: str, client_id: str, scopes: tuple[str, ...] = ()
) -> Remembered | None:
    """The failure remembered on this host for a machine credential, or None: for
    `stacktoken status` (no fingerprint computed, so not whether it still holds
    for the secret at hand)."""
    from stacktoken.core._paths import client_key, client_paths

    key = client_key(stack_uri, client_id, scopes)
    place = Place(root=cache_dir, parts=(*client_paths(key).folder, FAILURE_FILE))
    return remembered_failure(FileSlot(place, log=lambda _: None))


def stack_failure(cache_dir: str, stack_root: str, folder: tuple[str, ...]) -> Remembered | None:
    """The failure remembered for an fctl stack (`FctlStack.root`, `.paths.folder`),
    or None: for `stacktoken status`."""
    place = fctl_failure_place(cache_dir, stack_root, folder)
    return remembered_failure(FileSlot(place, log=lambda _: None))
