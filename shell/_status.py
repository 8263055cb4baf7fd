"""`stacktoken status` and `stacktoken.status()` (docs/design.md §14).

Without `check` nothing but local files is read: the profile, the stack's
`accesses.json` and cache entry, or the machine credential's cache entry.
`check=True` then gets a token through the source's cache, as `token` does,
and says where it came from and how long it took.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from returns.result import Failure, Result, Success
from stacktoken.core._codecs import decode_accesses
from stacktoken.core._errors import AcquireError, exit_code
from stacktoken.core._failures import Remembered
from stacktoken.core._status import (
    CheckResult,
    CredentialStatus,
    granted_scopes,
    login_time,
    token_origin,
)

from ._config import FctlStack, default_cache_dir
from ._credential import Resolved, resolve_chain
from ._failures import client_failure, stack_failure
from ._files import Place, read_private
from ._process import utc_now
from ._stores import client_store, read_cache_entry

__all__ = ["credential_status", "status", "collect_status"]


def collect_status(
    *,
    check: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = lambda _: None,
    environ: Mapping[str, str] | None = None,
    stdin: Callable[[], str] | None = None,
    **chain: Any,
) -> Result[CredentialStatus, AcquireError]:
    """The status of the credential the chain picks (`chain`: `resolve_chain`'s
    arguments); a Failure when none can be picked (usage error, nothing found)."""
    env = os.environ if environ is None else environ
    resolved: Result[Resolved, AcquireError] = resolve_chain(environ=env, stdin=stdin, **chain)
    cache_root = os.fspath(cache_dir) if cache_dir is not None else None

    def described(found: Resolved) -> CredentialStatus:
        facts = credential_status(found, cache_dir=cache_root or default_cache_dir(env))
        if not check:
            return facts
        return replace(facts, check=_check(found, cache_dir=cache_root, log=log, environ=env))

    return resolved.map(described)


def status(**options: Any) -> CredentialStatus:
    """Which credential stacktoken would use, and what is known of it, as a value.

    Keywords: `stack_uri`, `client_id`, `client_secret`, `scopes`, `config_dir`,
    `profile`, `organization`, `stack` (as for `TokenSource.default()`),
    `cache_dir`, `environ`, and `check=True` to also get a token through the
    cache (`CredentialStatus.check`). No request is made without `check`.
    Raises `InvalidUsageError` or `AuthenticationRequiredError` when no
    credential can be picked.
    """
    from ._exceptions import as_exception

    result = collect_status(**options)
    found = result.value_or(None)
    if found is None:
        raise as_exception(result.failure())
    return found


def credential_status(found: Resolved, *, cache_dir: str) -> CredentialStatus:
    """The local facts about a resolved credential; no request."""
    chosen = found.credential
    if found.client is not None:
        client = found.client
        store = client_store(cache_dir, client, log=lambda _: None)
        read = store.read()
        entry = None if isinstance(read, str) else read[0]
        return CredentialStatus(
            credential="client",
            origin=chosen.origin,
            why=chosen.why,
            stack_uri=client.stack_uri,
            client_id=client.client_id,
            scopes_requested=client.scopes,
            scopes_granted=granted_scopes(entry.access_token) if entry is not None else None,
            token_expiry=entry.expiry if entry is not None else None,
            secret_from=found.secret_from,
            failure=_in_force(
                client_failure(cache_dir, client.stack_uri, client.client_id, client.scopes)
            ),
        )
    assert found.stack is not None  # a Resolved holds one or the other
    failure = stack_failure(cache_dir, found.stack.root, found.stack.paths.folder)
    return replace(_profile_status(found, found.stack), failure=_in_force(failure))


def _in_force(failure: Remembered | None) -> Remembered | None:
    """A remembered failure while its time runs (this host's files; the fleet's
    Redis is read by `check` only)."""
    return failure if failure is not None and utc_now() < failure.until else None


def _profile_status(found: Resolved, stack: FctlStack) -> CredentialStatus:
    key, profile = stack.key, stack.profile
    ref = profile.stack(key.organization, key.stack)
    cached = read_cache_entry(Place(root=stack.root, parts=stack.paths.cache))
    access_read = read_private(Place(root=stack.root, parts=stack.paths.accesses))
    access = None
    if not isinstance(access_read, str):
        access = decode_accesses(access_read[0]).value_or(None)
    profile_read = read_private(
        Place(root=stack.root, parts=("profiles", key.profile, "profile.json"))
    )
    logged_in_at = None if isinstance(profile_read, str) else login_time(profile_read[0])
    problem = None
    if ref is None or not ref.uri:
        problem = f"the profile has no access to stack {key.stack!r} of {key.organization!r}"
    elif access is None:
        problem = f"no stack access token for {key} (`stacktoken login --organization "
        problem += f"{key.organization} --stack {key.stack}` gets one)"
    return CredentialStatus(
        credential="fctl",
        origin=found.credential.origin,
        why=found.credential.why,
        profile=key.profile,
        organization=key.organization,
        stack=key.stack,
        stack_uri=ref.uri if ref is not None else None,
        membership_uri=profile.membership_uri,
        token_expiry=None if isinstance(cached, str) else cached[0].expiry,
        stack_access_expiry=access.expiry if access is not None else None,
        logged_in_at=logged_in_at,
        login_needed=problem is not None,
        problem=problem,
    )


def _check(
    found: Resolved,
    *,
    cache_dir: str | None,
    log: Callable[[str], None],
    environ: Mapping[str, str],
) -> CheckResult:
    """A token through the cache, as `token` gets it: where from, how long."""
    from ._source import TokenSource, client_source, fctl_source

    lines: list[str] = []

    def recording(line: str) -> None:
        lines.append(line)
        log(line)

    started = time.perf_counter()
    built: Result[TokenSource, AcquireError]
    if found.client is not None:
        client = found.client
        built = client_source(
            stack_uri=client.stack_uri,
            client_id=client.client_id,
            client_secret=client.client_secret,
            scopes=client.scopes,
            cache_dir=cache_dir,
            store=_shared_store(environ, recording),
            log=recording,
            environ=environ,
        )
    else:
        assert found.stack is not None  # a Resolved holds one or the other
        key = found.stack.key
        built = fctl_source(
            config_dir=found.config_dir,
            profile=key.profile,
            organization=key.organization,
            stack=key.stack,
            cache_dir=cache_dir,
            log=recording,
            environ=environ,
        )

    def obtained(source: TokenSource) -> Result[Any, AcquireError]:
        with source:
            return source.token_result()

    result = built.bind(obtained)
    seconds = time.perf_counter() - started
    match result:
        case Success(token):
            return CheckResult(origin=token_origin(lines), seconds=seconds, expiry=token.expiry)
        case Failure(error):
            return CheckResult(
                origin=None, seconds=seconds, error=error.message, exit_code=exit_code(error)
            )
    raise AssertionError("a Result is a Success or a Failure")


def _shared_store(environ: Mapping[str, str], log: Callable[[str], None]) -> Any:
    """The fleet's Redis store when `$STACKTOKEN_REDIS_URL` names one (as `token`)."""
    from stacktoken.core._commands import store_url_from

    url = store_url_from(None, environ)
    if not isinstance(url, str):
        return None
    from ._redis import RedisStore, store_url_problem

    return None if store_url_problem(url) else RedisStore(url, log=log)
