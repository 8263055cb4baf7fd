"""The credential chain's effects (docs/design.md §14): the facts core's
`_chain` decides on (the environment, the profile file), the secret read, and
the token source of the credential picked.

No network call is made to resolve a credential: only the environment and
the profile (and a secret file) are read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from returns.result import Failure, Result, Success
from stacktoken.core._chain import (
    CLIENT,
    SECRET_ENV,
    Credential,
    choose_credential,
    with_profile,
)
from stacktoken.core._errors import AcquireError, LocalError, UsageError
from stacktoken.core._profile import Profile
from stacktoken.core._time import datetime, timedelta
from stacktoken.core._types import ClientCredentials

from ._config import (
    FctlStack,
    config_dir_from,
    current_profile,
    load_profile,
    locate_stack,
    read_secret_file,
)

if TYPE_CHECKING:
    from stacktoken.core._renewal import RenewalPolicy

    from ._http import HttpPolicy
    from ._setup import SharedStore
    from ._source import TokenSource

__all__ = ["ChainOptions", "Resolved", "default_source", "resolve_chain"]


class ChainOptions(TypedDict, total=False):
    """The arguments of `TokenSource.default()` (each optional)."""

    stack_uri: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...] | list[str]
    config_dir: str | os.PathLike[str]
    profile: str
    organization: str
    stack: str
    cache_dir: str | os.PathLike[str]
    cache_ttl: str | timedelta
    store: SharedStore
    log: Callable[[str], None]
    http_policy: HttpPolicy
    environ: Mapping[str, str]
    renewal: RenewalPolicy | None
    renew_in_background: bool
    lock_timeout: float
    clock: Callable[[], datetime]


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    """The chain's pick, ready to use: a machine credential with its secret read
    (`secret_from` says where, never what), or a located stack of a profile."""

    credential: Credential
    config_dir: str
    client: ClientCredentials | None = None
    secret_from: str | None = None
    stack: FctlStack | None = None


def profile_fact(
    config_dir: str, profile: str | None, environ: Mapping[str, str]
) -> tuple[str, AcquireError | None]:
    """The profile the chain would use, and why it cannot be (None: logged in)."""
    name = current_profile(config_dir, profile, environ)
    if isinstance(name, LocalError):
        return profile or "?", name
    loaded = load_profile(config_dir, name)
    return name, None if isinstance(loaded, Profile) else loaded


def choose(
    *,
    explicit_client: bool,
    explicit_fctl: bool,
    config_dir: str,
    profile: str | None,
    environ: Mapping[str, str],
) -> Credential | AcquireError:
    """Core's chain over this process's facts; the profile file is read only when
    the chain reaches it."""
    chosen = choose_credential(
        explicit_client=explicit_client, explicit_fctl=explicit_fctl, environ=environ
    )
    if not isinstance(chosen, Credential) or chosen.kind == CLIENT:
        return chosen
    name, problem = profile_fact(config_dir, profile, environ)
    return with_profile(chosen, profile=name, problem=problem)


def read_secret(
    given: str | None,
    *,
    secret_file: str | None,
    environ: Mapping[str, str],
    stdin: Callable[[], str] | None = None,
) -> tuple[str, str] | UsageError:
    """The client secret and where it came from: the argument, else the file
    (`-` for stdin), else `$STACKTOKEN_CLIENT_SECRET`."""
    if given is not None:
        return (given, "argument") if given else UsageError(message="the client secret is empty")
    if secret_file == "-" and stdin is not None:  # noqa: S105 - `-` names stdin
        secret = stdin().strip()
        return (secret, "stdin") if secret else UsageError(message="no client secret on stdin")
    if secret_file is not None:
        read = read_secret_file(secret_file)
        return read if isinstance(read, UsageError) else (read, f"file {secret_file}")
    from_env = environ.get(SECRET_ENV)
    if from_env:
        return from_env, f"${SECRET_ENV}"
    return UsageError(
        message=f"no client secret: set ${SECRET_ENV} or use --client-secret-file PATH"
    )


def resolve_chain(
    *,
    stack_uri: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    secret_file: str | None = None,
    scopes: tuple[str, ...] | list[str] | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    organization: str | None = None,
    stack: str | None = None,
    environ: Mapping[str, str] | None = None,
    stdin: Callable[[], str] | None = None,
) -> Result[Resolved, AcquireError]:
    """Which credential, and everything needed to use it, without a request."""
    env = os.environ if environ is None else environ
    root = config_dir_from(os.fspath(config_dir) if config_dir is not None else None, env)
    explicit_client = stack_uri is not None or client_id is not None
    chosen = choose(
        explicit_client=explicit_client,
        explicit_fctl=any(v is not None for v in (config_dir, profile, organization, stack)),
        config_dir=root,
        profile=profile,
        environ=env,
    )
    if not isinstance(chosen, Credential):
        return Failure(chosen)
    if chosen.kind != CLIENT:
        located = locate_stack(
            root, profile=profile, organization=organization, stack=stack, environ=env
        )
        if not isinstance(located, FctlStack):
            return Failure(located)
        return Success(Resolved(credential=chosen, config_dir=root, stack=located))
    if explicit_client:
        if any(v is not None for v in (config_dir, profile, organization, stack)):
            return Failure(
                UsageError(
                    message="a stack URI and client id select a machine credential; a "
                    "profile, config dir, organization or stack an fctl profile: give one "
                    "or the other"
                )
            )
        if not stack_uri or not client_id:
            return Failure(
                UsageError(message="machine credentials need both --stack-uri and --client-id")
            )
        uri, identity, wanted = stack_uri, client_id, tuple(scopes or ())
    else:
        uri, identity = chosen.stack_uri or "", chosen.client_id or ""
        wanted = tuple(scopes) if scopes is not None else chosen.scopes or ()
    secret = read_secret(
        client_secret,
        secret_file=secret_file or chosen.secret_file,
        environ=env,
        stdin=stdin,
    )
    if isinstance(secret, UsageError):
        return Failure(secret)
    credentials = ClientCredentials.of(
        stack_uri=uri.rstrip("/"), client_id=identity, client_secret=secret[0], scopes=wanted
    )
    return Success(
        Resolved(credential=chosen, config_dir=root, client=credentials, secret_from=secret[1])
    )


def default_source(
    *,
    fctl: Callable[..., Result[TokenSource, AcquireError]],
    client: Callable[..., Result[TokenSource, AcquireError]],
    **options: Any,
) -> Result[TokenSource, AcquireError]:
    """`TokenSource.default()`: the source of the credential the chain picks, made by
    `fctl` or `client` (`_source`'s constructors, given so that this module needs
    no import of `_source`)."""
    chain_keys = (
        "stack_uri",
        "client_id",
        "client_secret",
        "scopes",
        "config_dir",
        "profile",
        "organization",
        "stack",
        "environ",
    )
    resolved = resolve_chain(**{key: options[key] for key in chain_keys if key in options})
    common = {
        key: options[key]
        for key in (
            "cache_dir",
            "cache_ttl",
            "log",
            "http_policy",
            "environ",
            "renewal",
            "renew_in_background",
            "lock_timeout",
            "clock",
        )
        if key in options
    }

    def build(found: Resolved) -> Result[TokenSource, AcquireError]:
        if found.client is not None:
            credentials = found.client
            return client(
                stack_uri=credentials.stack_uri,
                client_id=credentials.client_id,
                client_secret=credentials.client_secret,
                scopes=credentials.scopes,
                store=options.get("store"),
                **common,
            )
        if options.get("store") is not None:
            return Failure(
                UsageError(
                    message="a shared store serves machine credentials; fctl-profile tokens "
                    "belong to one user and stay on the local disk"
                )
            )
        assert found.stack is not None  # a Resolved holds one or the other
        key = found.stack.key
        return fctl(
            config_dir=found.config_dir,
            profile=key.profile,
            organization=key.organization,
            stack=key.stack,
            **common,
        )

    return resolved.bind(build)
