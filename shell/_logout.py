"""`stacktoken logout` and `stacktoken.logout()` (docs/design.md §14).

For a profile: each membership refresh token the profile holds (the root one
in `profile.json`, each stack's in `accesses.json`) is revoked at the
membership discovery's `revocation_endpoint` when there is one (RFC 7009,
public client `fctl`); then `rootTokens` is cleared in `profile.json` (other
keys kept, fctl still reads it) and every `accesses.json` and
`api_token_cache.json` of the profile is deleted. The local state goes even
when a revocation fails: a token not revoked is reported, not fatal.

For a machine credential: its cached token (disk, and the fleet's Redis when
one is configured) is revoked at the stack's `revocation_endpoint`, the
client authenticating as for its token request, and the entries are deleted.

Logging out twice is harmless: the second time finds nothing to revoke.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from returns.result import Failure, Result, Success
from stacktoken.core._chain import CLIENT, Credential, choose_credential
from stacktoken.core._codecs import decode_accesses
from stacktoken.core._commands import store_url_from
from stacktoken.core._errors import AcquireError, LocalError, UsageError
from stacktoken.core._json import json_object
from stacktoken.core._paths import ACCESSES_FILE, CACHE_FILE, LOCK_SUFFIX, name_error, profile_file
from stacktoken.core._requests import (
    DiscoveryTarget,
    interpret_discovery,
    membership_discovery,
    stack_discovery,
)
from stacktoken.core._revocation import (
    cleared_profile,
    client_revocation_request,
    interpret_revocation,
    refresh_revocation_request,
    refresh_tokens_of_profile,
    revocation_endpoint,
)
from stacktoken.core._types import ClientCredentials, DiscoveryDocument, TokenRequest

from ._config import config_dir_from, current_profile, default_cache_dir
from ._credential import resolve_chain
from ._files import Place, read_private, remove_file, write_atomic
from ._http import Http, HttpPolicy
from ._lock import locked
from ._process import utc_now
from ._stores import client_store

__all__ = ["LogoutReport", "logout", "logout_command"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LogoutReport:
    """What a logout did. `not_revoked`: one line per token that could not be
    revoked (which token, why; never the token); `removed`: files and entries
    deleted; `notes`: what else the user should know (no revocation endpoint)."""

    credential: str
    name: str
    revoked: int = 0
    not_revoked: tuple[str, ...] = ()
    removed: int = 0
    notes: tuple[str, ...] = ()


def logout_command(
    *,
    stack_uri: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    secret_file: str | None = None,
    scopes: tuple[str, ...] | list[str] | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    store: str | None = None,
    http_policy: HttpPolicy | None = None,
    environ: Mapping[str, str] | None = None,
    log: Callable[[str], None] = lambda _: None,
    stdin: Callable[[], str] | None = None,
) -> Result[LogoutReport, AcquireError]:
    """Log out of the credential the chain picks (a logged-out profile included)."""
    env = os.environ if environ is None else environ
    root = config_dir_from(os.fspath(config_dir) if config_dir is not None else None, env)
    chosen = choose_credential(
        explicit_client=stack_uri is not None or client_id is not None,
        explicit_fctl=config_dir is not None or profile is not None,
        environ=env,
    )
    if not isinstance(chosen, Credential):
        return Failure(chosen)
    http = Http(policy=http_policy or HttpPolicy(), clock=utc_now, log=log)
    try:
        if chosen.kind == CLIENT:
            cache_root = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir(env)
            return resolve_chain(
                stack_uri=stack_uri,
                client_id=client_id,
                client_secret=client_secret,
                secret_file=secret_file,
                scopes=scopes,
                environ=env,
                stdin=stdin,
            ).bind(
                lambda found: (
                    _logout_client(
                        found.client, http=http, cache_dir=cache_root, store=store, env=env, log=log
                    )
                    if found.client is not None
                    else Failure(UsageError(message="no machine credential to log out of"))
                )
            )
        name = current_profile(root, profile, env)
        if isinstance(name, LocalError):
            return Failure(name)
        invalid = name_error("profile", name)
        if invalid is not None:
            return Failure(invalid)
        return _logout_profile(root, name, http=http, log=log)
    finally:
        http.close()


def logout(**options: Any) -> LogoutReport:
    """Log out, as `stacktoken logout` does: revoke what can be revoked, then
    delete the local tokens. Keywords as `logout_command` (`profile`,
    `config_dir`; or `stack_uri`, `client_id`, `client_secret`, `scopes`,
    `cache_dir`, `store`). A token that could not be revoked is listed in the
    report's `not_revoked`, not raised. Raises `StackTokenError` subclasses on
    usage errors and when local files cannot be changed."""
    from ._exceptions import as_exception

    result = logout_command(**options)
    report = result.value_or(None)
    if report is None:
        raise as_exception(result.failure())
    return report


# -- the profile ----------------------------------------------------------------


def _stack_folders(root: str, profile: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """`(org/stack, folder segments)` of every stack folder of the profile; a
    symlink is not followed (it could lead out of the config dir)."""
    organizations = ("profiles", profile, "organizations")
    for organization in _folders(os.path.join(root, *organizations)):
        stacks = (*organizations, organization, "stacks")
        for stack in _folders(os.path.join(root, *stacks)):
            yield f"{organization}/{stack}", (*stacks, stack)


def _folders(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def _logout_profile(
    root: str, profile: str, *, http: Http, log: Callable[[str], None]
) -> Result[LogoutReport, AcquireError]:
    place = Place(root=root, parts=profile_file(profile))
    read = read_private(place)
    if isinstance(read, str) and read != "no such file":
        return Failure(LocalError(message=f"refusing {place}: {read}"))
    data = None if isinstance(read, str) else read[0]
    tokens: list[tuple[str, str]] = []
    if data is not None and (root_token := refresh_tokens_of_profile(data)) is not None:
        tokens.append(("the profile's root refresh token", root_token))
    folders = list(_stack_folders(root, profile))
    for shown, folder in folders:
        accesses = read_private(Place(root=root, parts=(*folder, ACCESSES_FILE)))
        if isinstance(accesses, str):
            continue
        access = decode_accesses(accesses[0]).value_or(None)
        if access is not None and access.refresh_token:
            tokens.append((f"the refresh token of stack {shown}", access.refresh_token))
    membership_uri = _membership_uri(data)
    revoked, not_revoked, notes = 0, list[str](), list[str]()  # nothing revoked yet
    if tokens and membership_uri is None:
        notes.append("the profile names no membership URI: nothing revoked")
    elif tokens and membership_uri is not None:
        revoked, not_revoked, notes = _revoke_all(
            membership_discovery(membership_uri),
            tokens,
            http=http,
            request=lambda endpoint, _, token: refresh_revocation_request(endpoint, token),
        )
    removed = 0
    if data is not None and _logged_in(data) and (cleared := cleared_profile(data)) is not None:
        written = write_atomic(place, cleared, log=log)
        if isinstance(written, Failure):
            return Failure(written.failure())
        removed += 1
    for _, folder in folders:
        match _remove_stack_files(root, folder, log=log):
            case Success(count):
                removed += count
            case Failure(error):
                return Failure(error)
    return Success(
        LogoutReport(
            credential="fctl",
            name=profile,
            revoked=revoked,
            not_revoked=tuple(not_revoked),
            removed=removed,
            notes=tuple(notes),
        )
    )


def _membership_uri(data: bytes | None) -> str | None:
    document = json_object(data) if data is not None else None
    uri = document.get("membershipURI") if isinstance(document, dict) else None
    return uri if isinstance(uri, str) and uri else None


def _logged_in(data: bytes) -> bool:
    document = json_object(data)
    return isinstance(document, dict) and document.get("rootTokens") is not None


def _remove_stack_files(
    root: str, folder: tuple[str, ...], *, log: Callable[[str], None]
) -> Result[int, LocalError]:
    """Delete a stack's `accesses.json` and cache entry under its lock (a token
    run in progress finishes first, and cannot write them back afterwards
    without a profile to refresh from)."""

    def remove(_: bool) -> Result[int, LocalError]:
        count = 0
        for name in (ACCESSES_FILE, CACHE_FILE):
            match remove_file(Place(root=root, parts=(*folder, name))):
                case Success(True):
                    count += 1
                case Failure(error):
                    return Failure(error)
        return Success(count)

    lock = Place(root=root, parts=(*folder, CACHE_FILE + LOCK_SUFFIX))
    return locked(lock, remove, log=log)


# -- revocation -----------------------------------------------------------------

_Request = Callable[[str, DiscoveryDocument, str], TokenRequest]


def _revoke_all(
    target: DiscoveryTarget,
    tokens: list[tuple[str, str]],
    *,
    http: Http,
    request: _Request,
) -> tuple[int, list[str], list[str]]:
    """Revoke each `(what, token)` at the revocation endpoint `target`'s discovery
    names: (revoked, one line per token not revoked, notes)."""
    answer = http.get(target.url)
    found = answer.bind(
        lambda got: interpret_discovery(got.status_code, got.body, target=target).map(
            lambda document: (document, revocation_endpoint(got.body))
        )
    )
    match found:
        case Failure(error):
            return 0, [f"{what} was not revoked: {error.message}" for what, _ in tokens], []
        case Success((document, endpoint)):
            pass
    if endpoint is None:
        return (
            0,
            [],
            [
                f"{target.issuer} offers no revocation endpoint: {len(tokens)} token(s) "
                "not revoked (they end with their lifetime)"
            ],
        )
    revoked, failed = 0, []
    for what, token in tokens:
        problem: str | None
        match http.post(request(endpoint, document, token)):
            case Success(got):
                problem = interpret_revocation(got.status_code, got.body, url=endpoint)
            case Failure(error):
                problem = error.message
        if problem is None:
            revoked += 1
        else:
            failed.append(f"{what} was not revoked: {problem}")
    return revoked, failed, []


# -- a machine credential ----------------------------------------------------------


def _logout_client(
    credentials: ClientCredentials,
    *,
    http: Http,
    cache_dir: str,
    store: str | None,
    env: Mapping[str, str],
    log: Callable[[str], None],
) -> Result[LogoutReport, AcquireError]:
    disk = client_store(cache_dir, credentials, log=log)
    records = [disk.record()]
    url = store_url_from(store, env)
    if isinstance(url, UsageError):
        return Failure(url)
    if url is not None:
        from stacktoken.core._paths import client_key

        from ._redis import RedisStore, store_url_problem

        if problem := store_url_problem(url):
            return Failure(problem)
        shared = RedisStore(url, log=log)
        key = client_key(credentials.stack_uri, credentials.client_id, credentials.scopes)
        records.append(
            shared.record(
                key,
                stack_uri=credentials.stack_uri,
                client_id=credentials.client_id,
                scopes=credentials.scopes,
            )
        )
    held: list[str] = []
    for record in records:
        read = record.read()
        if not isinstance(read, str) and read[0].access_token not in held:
            held.append(read[0].access_token)
    name = f"client {credentials.client_id} at {credentials.stack_uri}"
    revoked, not_revoked, notes = 0, list[str](), list[str]()  # nothing revoked yet
    if held:
        revoked, not_revoked, notes = _revoke_all(
            stack_discovery(credentials.stack_uri),
            [(f"the cached token of {name}", token) for token in held],
            http=http,
            request=lambda endpoint, document, token: client_revocation_request(
                endpoint, document, credentials, token
            ),
        )
    removed = 0
    match remove_file(disk.place(disk.files.paths.cache)):
        case Success(True):
            removed += 1
        case Failure(error):
            return Failure(error)
    for record in records[1:]:
        for token in held:
            match record.drop(token):
                case Success(True):
                    removed += 1
                case Failure(error):
                    notes.append(f"the shared store's entry stays: {error.message}")
    return Success(
        LogoutReport(
            credential="client",
            name=name,
            revoked=revoked,
            not_revoked=tuple(not_revoked),
            removed=removed,
            notes=tuple(notes),
        )
    )
