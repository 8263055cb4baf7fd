"""Which credential: the chain (docs/design.md §14), decided without any I/O.

Theory of operation
-------------------
A command or a library call without an explicit credential looks, in order:

    1. explicit arguments: `--stack-uri`/`--client-id` pick the machine
       credential they name; `--profile`/`--organization`/`--stack`/
       `--config-dir` pick the fctl profile;
    2. a machine credential in the environment: `STACKTOKEN_STACK_URI` and
       `STACKTOKEN_CLIENT_ID`, the secret in `STACKTOKEN_CLIENT_SECRET` or in the
       file `STACKTOKEN_CLIENT_SECRET_FILE` names, `STACKTOKEN_SCOPES` optional;
    3. the fctl profile.

`STACKTOKEN_CREDENTIAL=client|fctl` pins one source. Half a machine credential
(the stack URI or the client id without the rest) is a usage error naming
what is missing, never a silent fall-through to the profile; the secret alone
(a job that passes the flags) is not half a credential.

`choose_credential` reads only the environment view it is given; whether the
profile applies is a fact the shell brings (`with_profile`), since that needs
a file. The warm path calls `chained_options` on its option dict, so both
paths decide with these functions. Warm-set module: stdlib-free records only.
"""

from ._errors import AuthRequired, UsageError
from ._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._errors import AcquireError

__all__ = [
    "CLIENT",
    "CLIENT_ID_ENV",
    "CREDENTIAL_ENV",
    "FCTL",
    "SCOPES_ENV",
    "SECRET_ENV",
    "SECRET_FILE_ENV",
    "STACK_URI_ENV",
    "Credential",
    "chained_options",
    "choose_credential",
    "with_profile",
]

STACK_URI_ENV = "STACKTOKEN_STACK_URI"
CLIENT_ID_ENV = "STACKTOKEN_CLIENT_ID"
SECRET_ENV = "STACKTOKEN_CLIENT_SECRET"  # noqa: S105 - a variable name
SECRET_FILE_ENV = "STACKTOKEN_CLIENT_SECRET_FILE"  # noqa: S105 - a variable name
SCOPES_ENV = "STACKTOKEN_SCOPES"
CREDENTIAL_ENV = "STACKTOKEN_CREDENTIAL"
CLIENT = "client"
FCTL = "fctl"
_FCTL_OPTIONS = ("config_dir", "profile", "organization", "stack")


class Credential(Record):
    """The credential the chain picked, and why (never a secret: only where it is).

    `kind` is `"client"` or `"fctl"`; `origin` is `"arguments"` or
    `"environment"` for a client, `"arguments"` or `"profile"` for fctl.
    For a machine credential from the environment, `stack_uri`, `client_id`
    and `scopes` are its; `secret_file` names the file holding the secret when
    `STACKTOKEN_CLIENT_SECRET` is not set. `tried` says why each earlier
    source did not apply.
    """

    kind: str
    origin: str
    why: str
    tried: "tuple[str, ...]" = ()
    stack_uri: "str | None" = None
    client_id: "str | None" = None
    scopes: "tuple[str, ...] | None" = None
    secret_file: "str | None" = None


def _get(environ: "Mapping[str, str]", name: str) -> "str | None":
    return environ.get(name) or None  # empty counts as unset, as for fctl's variables


def _secret_file(environ: "Mapping[str, str]") -> "str | None":
    """The secret file to read when the secret variable itself is not set."""
    return None if _get(environ, SECRET_ENV) else _get(environ, SECRET_FILE_ENV)


def choose_credential(
    *, explicit_client: bool, explicit_fctl: bool, environ: "Mapping[str, str]"
) -> "Credential | UsageError | AuthRequired":
    """The chain's choice before the profile is looked at (`with_profile` finishes it).

    `explicit_client`: `--stack-uri`/`--client-id` (or `stack_uri`/`client_id`
    arguments) were given; `explicit_fctl`: a profile, organization, stack or
    config dir was. Given both, the machine credential is chosen, and the
    caller refuses the mix as it always has."""
    pin = _get(environ, CREDENTIAL_ENV)
    if pin is not None and pin not in (CLIENT, FCTL):
        return UsageError(message=f"${CREDENTIAL_ENV} must be `client` or `fctl`, not {pin!r}")
    if explicit_client or explicit_fctl:
        kind = CLIENT if explicit_client else FCTL
        if pin is not None and pin != kind:
            return UsageError(
                message=f"${CREDENTIAL_ENV}={pin} pins the {pin} credential, "
                f"but the arguments select the {kind} one"
            )
        return Credential(
            kind=kind,
            origin="arguments",
            why="given explicitly",
            secret_file=_secret_file(environ) if kind == CLIENT else None,
        )
    tried = ("arguments: no --stack-uri/--client-id, --profile, --organization or --stack",)
    if pin == FCTL:
        return Credential(
            kind=FCTL,
            origin="profile",
            why=f"${CREDENTIAL_ENV}=fctl",
            tried=(*tried, f"environment: skipped (${CREDENTIAL_ENV}=fctl)"),
        )
    machine = _machine(environ, pinned=pin == CLIENT)
    if isinstance(machine, Credential | UsageError | AuthRequired):
        return machine
    return Credential(
        kind=FCTL,
        origin="profile",
        why=f"no machine credential in the environment ({machine})",
        tried=(*tried, f"environment: {machine}"),
    )


def _machine(
    environ: "Mapping[str, str]", *, pinned: bool
) -> "Credential | UsageError | AuthRequired | str":
    """The environment's machine credential, the error it makes, or why there is none."""
    stack_uri = _get(environ, STACK_URI_ENV)
    client_id = _get(environ, CLIENT_ID_ENV)
    secret = _get(environ, SECRET_ENV) is not None or _get(environ, SECRET_FILE_ENV) is not None
    if stack_uri is None and client_id is None:
        absent = f"${STACK_URI_ENV} and ${CLIENT_ID_ENV} not set"
        if pinned:
            return AuthRequired(
                message=f"${CREDENTIAL_ENV}=client, but no machine credential: {absent} "
                "(and no --stack-uri/--client-id given)"
            )
        return absent
    missing = [
        name
        for name, present in (
            (f"${STACK_URI_ENV}", stack_uri is not None),
            (f"${CLIENT_ID_ENV}", client_id is not None),
            (f"${SECRET_ENV} (or ${SECRET_FILE_ENV})", secret),
        )
        if not present
    ]
    if missing:
        return UsageError(
            message=f"half a machine credential in the environment: {' and '.join(missing)} "
            f"not set; set {'it' if len(missing) == 1 else 'them'}, or unset the others "
            f"(${CREDENTIAL_ENV}=fctl ignores them)"
        )
    scopes = tuple(sorted(set((_get(environ, SCOPES_ENV) or "").split())))
    return Credential(
        kind=CLIENT,
        origin="environment",
        why=f"${STACK_URI_ENV} and ${CLIENT_ID_ENV} are set",
        tried=("arguments: no --stack-uri/--client-id, --profile, --organization or --stack",),
        stack_uri=stack_uri,
        client_id=client_id,
        scopes=scopes,
        secret_file=_secret_file(environ),
    )


def with_profile(
    chosen: Credential, *, profile: str, problem: "AcquireError | None"
) -> "Credential | AcquireError":
    """Finish an fctl choice with the fact the shell read: `problem` is None when
    `profile` is logged in, else why it cannot be used. A profile that needs a
    login, reached by falling through the chain, makes "nothing found" naming
    every source tried; an explicit or pinned choice keeps the profile's own error."""
    if chosen.kind != FCTL or problem is None:
        return chosen
    if not isinstance(problem, AuthRequired) or chosen.origin == "arguments":
        return problem
    tried = "; ".join((*chosen.tried, f"fctl profile {profile!r}: {problem.message}"))
    return AuthRequired(message=f"no credential found: {tried}")


def chained_options(
    options: "dict[str, object]", environ: "Mapping[str, str]"
) -> "dict[str, object] | None":
    """The warm path's `token` options with the chain applied: the environment's
    machine credential as if given by flags. None when the chain errs (the
    full CLI then reports it)."""
    chosen = choose_credential(
        explicit_client="stack_uri" in options or "client_id" in options,
        explicit_fctl=any(name in options for name in _FCTL_OPTIONS),
        environ=environ,
    )
    if not isinstance(chosen, Credential):
        return None
    if chosen.kind != CLIENT:
        return options
    chained = dict(options)
    if chosen.origin == "environment":
        chained["stack_uri"] = chosen.stack_uri or ""
        chained["client_id"] = chosen.client_id or ""
        if chosen.scopes and chained.get("scope") is None:
            chained["scope"] = list(chosen.scopes)
    if chosen.secret_file is not None and "client_secret_file" not in chained:
        chained["client_secret_file"] = chosen.secret_file
    return chained
