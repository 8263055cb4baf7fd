"""Where things are and what is configured: the environment's names, fctl's
config dir and the cache dir, the profile, organization and stack (with the
files that name them, trust-checked), the cache TTL and the client secret
file (docs/design.md §3, §3.1, §3.2, §4).

As fctl does (its flags fall back to `strcase.ToScreamingSnake(flag)` in the
environment), each choice is the flag, else its environment variable, else
the profile's default: `PROFILE`, `ORGANIZATION`, `STACK`,
`STACK_TOKEN_CACHE_TTL`. An empty variable counts as unset (viper's default);
an empty flag is kept, for the name check to refuse.

Every run starts here, warm ones included, so this module uses the stdlib
only, and its functions return the value or the error value itself.
"""

import os
import sys

from stacktoken.core._errors import AuthRequired, LocalError, UsageError
from stacktoken.core._paths import CONFIG_FILE, StackPaths, name_error, profile_file, stack_paths
from stacktoken.core._profile import (
    LOGIN_HINT,
    Profile,
    decode_current_profile,
    decode_profile,
    resolve_organization,
    resolve_stack,
)
from stacktoken.core._record import Record
from stacktoken.core._time import timedelta
from stacktoken.core._types import Settings, StackKey

from ._files import Place, read_plain, read_private

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


__all__ = [
    "CONFIG_DIR_ENV",
    "ORGANIZATION_ENV",
    "PROFILE_ENV",
    "STACK_ENV",
    "TTL_ENV",
    "FctlStack",
    "config_dir_from",
    "current_profile",
    "default_cache_dir",
    "load_profile",
    "locate_stack",
    "read_secret_file",
    "settings_from",
]

CONFIG_DIR_ENV = "FCTL_CONFIG_DIR"
PROFILE_ENV = "PROFILE"
ORGANIZATION_ENV = "ORGANIZATION"
STACK_ENV = "STACK"
TTL_ENV = "STACK_TOKEN_CACHE_TTL"
APP_NAME = "stacktoken"


def config_dir_from(flag: "str | None", environ: "Mapping[str, str]") -> str:
    """`--config-dir`, else `FCTL_CONFIG_DIR`, else `$HOME/.config/formance/fctl`:
    fctl's default on every OS, whatever `XDG_CONFIG_HOME` says (fctl ignores it,
    and both tools must look in the same place to share one cache)."""
    if flag:
        return flag
    if configured := environ.get(CONFIG_DIR_ENV):
        return configured
    return os.path.join(os.path.expanduser("~"), ".config", "formance", "fctl")


def default_cache_dir(environ: "Mapping[str, str]") -> str:
    """platformdirs' user cache dir for stacktoken.

    On Linux and the BSDs that is XDG's rule, `$XDG_CACHE_HOME/stacktoken`,
    else `~/.cache/stacktoken`: three lines, where `import platformdirs`
    costs more than a whole cold run's other imports (benchmarks/RESULTS.md).
    tests/test_shell_cache_dir.py holds the two equal. On macOS, Windows and
    Android, platformdirs answers.
    """
    if sys.platform in ("win32", "darwin") or "ANDROID_DATA" in environ:
        import platformdirs

        return platformdirs.user_cache_dir(APP_NAME)
    base = environ.get("XDG_CACHE_HOME", "")
    if not base.strip():
        base = os.path.expanduser("~/.cache")
    return os.path.join(base, APP_NAME)


def _chosen(flag: "str | None", environ: "Mapping[str, str]", variable: str) -> "str | None":
    if flag is not None:
        return flag
    return environ.get(variable) or None


def current_profile(
    config_dir: str, flag: "str | None", environ: "Mapping[str, str]"
) -> "str | LocalError":
    """`--profile`, else `PROFILE`, else the profile `config.yml` names, else `default`."""
    chosen = _chosen(flag, environ, PROFILE_ENV)
    if chosen is not None:
        return chosen
    data = _read_trusted(Place(root=config_dir, parts=(CONFIG_FILE,)), "it names the profile")
    return data if isinstance(data, LocalError) else decode_current_profile(data)


def _read_trusted(place: Place, decides: str) -> "bytes | LocalError | None":
    """A file that decides where our secrets go, checked as the secrets are: ours,
    a regular file, not writable by others, not through a symlink. None when it
    does not exist."""
    read = read_private(place)
    if read == "no such file":
        return None
    if isinstance(read, str):
        return LocalError(message=f"refusing {place}: {read} ({decides})")
    return read[0]


def settings_from(
    ttl: "str | timedelta | None", environ: "Mapping[str, str]"
) -> "Settings | UsageError":
    """Settings from `--stack-token-cache-ttl`, else `STACK_TOKEN_CACHE_TTL`, else 5 min."""
    if ttl is not None and not isinstance(ttl, str):
        if ttl < timedelta(0):  # as `parse_ttl` refuses "-5m"
            return UsageError(message=f"invalid cache TTL {ttl}: must not be negative")
        return Settings(cache_ttl=ttl)
    text = ttl if ttl is not None else environ.get(TTL_ENV)
    if text is None:
        return Settings()
    from stacktoken.core._durations import parse_ttl

    parsed = parse_ttl(text)
    return parsed if isinstance(parsed, UsageError) else Settings(cache_ttl=parsed)


def read_secret_file(path: str) -> "str | UsageError":
    """A client secret kept in a file (`--client-secret-file`), surrounding
    whitespace (the final newline an editor adds) stripped."""
    data = read_plain(path)
    if data is None:
        return UsageError(message=f"cannot read the client secret file {path!r}")
    try:
        secret = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return UsageError(message=f"the client secret file {path!r} is not UTF-8 text")
    if not secret:
        return UsageError(message=f"the client secret file {path!r} is empty")
    return secret


class FctlStack(Record):
    """A stack of an fctl profile: its key, its profile and its files below `root`."""

    key: StackKey
    profile: Profile
    root: str
    paths: StackPaths


def load_profile(config_dir: str, name: str) -> "Profile | UsageError | AuthRequired | LocalError":
    """Read and decode `profiles/<name>/profile.json` of a logged-in profile."""
    invalid = name_error("profile", name)
    if invalid is not None:
        return invalid
    data = _read_trusted(
        Place(root=config_dir, parts=profile_file(name)), "it says where the tokens are sent"
    )
    if isinstance(data, LocalError):
        return data
    if data is None:
        return AuthRequired(message=_missing_profile(config_dir, name))
    profile = decode_profile(name, data)
    # Checked before the disk cache: after `fctl logout` (rootTokens null) a
    # warm entry must not keep serving tokens.
    if isinstance(profile, Profile) and not profile.logged_in:
        return AuthRequired(message=f"profile {name!r} is not logged in; {LOGIN_HINT}")
    return profile


def _missing_profile(config_dir: str, name: str) -> str:
    login = "log in with `stacktoken login` (or `fctl login`)"
    if not os.path.isdir(config_dir):
        return (
            f"no fctl config dir at {config_dir!r}: {login}, or point --config-dir "
            f"or ${CONFIG_DIR_ENV} at the one fctl uses"
        )
    return f"no profile {name!r} in {config_dir!r}: {login}"


def locate_stack(
    config_dir: str,
    *,
    profile: "str | None",
    organization: "str | None",
    stack: "str | None",
    environ: "Mapping[str, str]",
) -> "FctlStack | UsageError | AuthRequired | LocalError":
    """Resolve profile, organization and stack as fctl does, and the stack's files."""
    name = current_profile(config_dir, profile, environ)
    if isinstance(name, LocalError):
        return name
    loaded = load_profile(config_dir, name)
    if not isinstance(loaded, Profile):
        return loaded
    organization_id = resolve_organization(loaded, _chosen(organization, environ, ORGANIZATION_ENV))
    if isinstance(organization_id, UsageError):
        return organization_id
    stack_id = resolve_stack(loaded, organization_id, _chosen(stack, environ, STACK_ENV))
    if isinstance(stack_id, UsageError):
        return stack_id
    key = StackKey(profile=name, organization=organization_id, stack=stack_id)
    paths = stack_paths(key)
    if isinstance(paths, UsageError):
        return paths
    return FctlStack(key=key, profile=loaded, root=config_dir, paths=paths)
