"""stacktoken's functional core: every decision, format and message, pure.

Nothing here reads a file, the clock, the environment or the network; time
comes in as `now`, effects as callables. Importing this package is cheap: each
name loads its module on first use (PEP 562), so a warm run, which needs only
the cache decisions, never loads the cold path's modules nor `returns`; cattrs
and pyjwt are imported only by the functions that need them.

The warm path's functions each have a twin named `..._or_error` (or
`..._or_reason`): the same decision, returning the value or the error value
itself instead of a `Result`, so that the warm path never imports `returns`.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._acquire import REFRESH_REJECTIONS, CacheRead, Effects, acquire, refreshed_access
    from ._cache_codec import (
        GO_ZERO_TIME,
        decode_cache_entry,
        decode_cache_entry_or_reason,
        encode_cache_entry,
        format_rfc3339,
        parse_rfc3339,
        parse_rfc3339_or_reason,
    )
    from ._codecs import (
        claims_expiry,
        decode_accesses,
        decode_discovery,
        decode_discovery_cache,
        decode_error_response,
        decode_token_response,
        encode_accesses,
        encode_discovery_cache,
        jwt_claims,
        jwt_expiry,
        one_line,
    )
    from ._decisions import DiskVerdict, is_fresh, judge_disk_entry, needs_refresh
    from ._durations import (
        MAX_DURATION_NS,
        format_duration,
        parse_duration,
        parse_duration_or_error,
        parse_ttl,
        parse_ttl_or_error,
    )
    from ._errors import (
        EXIT_CODES,
        AcquireError,
        AuthRequired,
        LocalError,
        OAuthError,
        RemoteError,
        UsageError,
        exit_code,
    )
    from ._lazy import (
        Idle,
        Join,
        LazyAction,
        LazyState,
        Ready,
        Running,
        Start,
        Use,
        on_forget,
        on_request,
        on_settle,
    )
    from ._paths import (
        ACCESSES_FILE,
        CACHE_FILE,
        CONFIG_FILE,
        LOCK_SUFFIX,
        MAX_NAME_BYTES,
        PROFILE_FILE,
        StackPaths,
        discovery_cache_name,
        name_error,
        profile_folder,
        stack_paths,
        stack_paths_or_error,
        validate_key,
        validate_name,
    )
    from ._profile import (
        DEFAULT_PROFILE,
        LOGIN_HINT,
        Organization,
        Profile,
        StackRef,
        decode_current_profile,
        decode_profile,
        decode_profile_or_error,
        resolve_organization,
        resolve_organization_or_error,
        resolve_stack,
        resolve_stack_or_error,
        stack_uri,
    )
    from ._requests import (
        DEFAULT_DISCOVERY_MAX_AGE,
        EXCHANGE_SCOPE,
        FCTL_CLIENT_ID,
        JWT_BEARER_GRANT,
        RETRYABLE_STATUSES,
        DiscoveryTarget,
        RetryPolicy,
        check_endpoint_url,
        discovery_max_age,
        exchange_request,
        interpret_discovery,
        interpret_token_response,
        membership_discovery,
        refresh_request,
        retry_delay,
        safe_url,
        stack_discovery,
    )
    from ._types import (
        CLOCK_SKEW_ALLOWANCE,
        DEFAULT_CACHE_TTL,
        EXPIRY_GRACE,
        CachedToken,
        DiscoveryDocument,
        JsonObject,
        Settings,
        StackAccess,
        StackKey,
        TokenRequest,
        TokenResponse,
    )

__all__ = [
    "ACCESSES_FILE",
    "CACHE_FILE",
    "CLOCK_SKEW_ALLOWANCE",
    "CONFIG_FILE",
    "DEFAULT_CACHE_TTL",
    "DEFAULT_DISCOVERY_MAX_AGE",
    "DEFAULT_PROFILE",
    "EXCHANGE_SCOPE",
    "EXIT_CODES",
    "EXPIRY_GRACE",
    "FCTL_CLIENT_ID",
    "GO_ZERO_TIME",
    "JWT_BEARER_GRANT",
    "LOCK_SUFFIX",
    "LOGIN_HINT",
    "MAX_DURATION_NS",
    "MAX_NAME_BYTES",
    "PROFILE_FILE",
    "REFRESH_REJECTIONS",
    "RETRYABLE_STATUSES",
    "AcquireError",
    "AuthRequired",
    "CacheRead",
    "CachedToken",
    "DiscoveryDocument",
    "DiscoveryTarget",
    "DiskVerdict",
    "Effects",
    "Idle",
    "Join",
    "JsonObject",
    "LazyAction",
    "LazyState",
    "LocalError",
    "OAuthError",
    "Organization",
    "Profile",
    "Ready",
    "RemoteError",
    "RetryPolicy",
    "Running",
    "Settings",
    "StackAccess",
    "StackKey",
    "StackPaths",
    "StackRef",
    "Start",
    "TokenRequest",
    "TokenResponse",
    "UsageError",
    "Use",
    "acquire",
    "check_endpoint_url",
    "claims_expiry",
    "decode_accesses",
    "decode_cache_entry",
    "decode_cache_entry_or_reason",
    "decode_current_profile",
    "decode_discovery",
    "decode_discovery_cache",
    "decode_error_response",
    "decode_profile",
    "decode_profile_or_error",
    "decode_token_response",
    "discovery_cache_name",
    "discovery_max_age",
    "encode_accesses",
    "encode_cache_entry",
    "encode_discovery_cache",
    "exchange_request",
    "exit_code",
    "format_duration",
    "format_rfc3339",
    "interpret_discovery",
    "interpret_token_response",
    "is_fresh",
    "judge_disk_entry",
    "jwt_claims",
    "jwt_expiry",
    "membership_discovery",
    "name_error",
    "needs_refresh",
    "on_request",
    "on_forget",
    "on_settle",
    "one_line",
    "parse_duration",
    "parse_duration_or_error",
    "parse_rfc3339",
    "parse_rfc3339_or_reason",
    "parse_ttl",
    "parse_ttl_or_error",
    "profile_folder",
    "refresh_request",
    "refreshed_access",
    "resolve_organization",
    "resolve_organization_or_error",
    "resolve_stack",
    "resolve_stack_or_error",
    "retry_delay",
    "safe_url",
    "stack_discovery",
    "stack_paths",
    "stack_paths_or_error",
    "stack_uri",
    "validate_key",
    "validate_name",
]


# Where each public name lives, for `__getattr__`; tests/test_warm_path_imports.py
# keeps it equal to `__all__`.
_HOMES = {
    "_acquire": "REFRESH_REJECTIONS CacheRead Effects acquire refreshed_access",
    "_cache_codec": (
        "GO_ZERO_TIME decode_cache_entry decode_cache_entry_or_reason encode_cache_entry"
        " format_rfc3339 parse_rfc3339 parse_rfc3339_or_reason"
    ),
    "_codecs": (
        "claims_expiry decode_accesses decode_discovery decode_discovery_cache"
        " decode_error_response decode_token_response encode_accesses encode_discovery_cache"
        " jwt_claims jwt_expiry one_line"
    ),
    "_decisions": "DiskVerdict is_fresh judge_disk_entry needs_refresh",
    "_durations": (
        "MAX_DURATION_NS format_duration parse_duration parse_duration_or_error parse_ttl"
        " parse_ttl_or_error"
    ),
    "_errors": (
        "EXIT_CODES AcquireError AuthRequired LocalError OAuthError RemoteError UsageError"
        " exit_code"
    ),
    "_lazy": (
        "Idle Join LazyAction LazyState Ready Running Start Use on_forget on_request on_settle"
    ),
    "_paths": (
        "ACCESSES_FILE CACHE_FILE CONFIG_FILE LOCK_SUFFIX MAX_NAME_BYTES PROFILE_FILE StackPaths"
        " discovery_cache_name name_error profile_folder stack_paths stack_paths_or_error"
        " validate_key validate_name"
    ),
    "_profile": (
        "DEFAULT_PROFILE LOGIN_HINT Organization Profile StackRef decode_current_profile"
        " decode_profile decode_profile_or_error resolve_organization"
        " resolve_organization_or_error resolve_stack resolve_stack_or_error stack_uri"
    ),
    "_requests": (
        "DEFAULT_DISCOVERY_MAX_AGE EXCHANGE_SCOPE FCTL_CLIENT_ID JWT_BEARER_GRANT"
        " RETRYABLE_STATUSES DiscoveryTarget RetryPolicy check_endpoint_url discovery_max_age"
        " exchange_request interpret_discovery interpret_token_response membership_discovery"
        " refresh_request retry_delay safe_url stack_discovery"
    ),
    "_types": (
        "CLOCK_SKEW_ALLOWANCE DEFAULT_CACHE_TTL EXPIRY_GRACE CachedToken DiscoveryDocument"
        " JsonObject Settings StackAccess StackKey TokenRequest TokenResponse"
    ),
}
if not TYPE_CHECKING:  # hidden from mypy, so that a misspelt name stays an error
    from ._exports import lazy_exports

    __getattr__, __dir__ = lazy_exports(globals(), _HOMES, __all__)
