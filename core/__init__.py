"""stacktoken's functional core: every decision, format and message, pure.

Nothing here reads a file, the clock, the environment or the network; time
comes in as `now`, effects as callables. Importing this package is cheap: each
name loads its module on first use (PEP 562). The modules a warm run needs
(records, decisions, paths, the profile and cache-entry decoders, the cache's
`usable_entry`) import neither `returns` nor `typing`, `dataclasses`, `enum`,
`re`, `json` or `pathlib`: their functions return the value or the error value
itself, and `lift` makes a `Result` of it for the cold path.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._cache import CacheRead, Grant, Store, usable_entry, write_failed
    from ._cache_codec import (
        GO_ZERO_TIME,
        decode_cache_entry,
        encode_cache_entry,
        format_rfc3339,
        parse_rfc3339,
    )
    from ._client_grant import CLIENT_REJECTIONS, ClientEffects, client_credentials_grant
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
    )
    from ._decisions import (
        DiskVerdict,
        fresh_until,
        is_fresh,
        judge_disk_entry,
        needs_refresh,
        stamp_mismatch,
    )
    from ._device import (
        DEFAULT_DEVICE_INTERVAL,
        DEFAULT_MEMBERSHIP_URI,
        DEVICE_CODE_GRANT,
        LOGIN_SCOPE,
        POLL_BACKOFF_CAP,
        SLOW_DOWN_STEP,
        STACK_ACCESS_SCOPE,
        STACK_SCOPES,
        DeviceAuthorization,
        DeviceEffects,
        DeviceFail,
        DeviceFinish,
        DevicePolling,
        DeviceSend,
        DeviceWait,
        LoginTokens,
        device_login,
        device_step,
        device_token_request,
        encode_config,
        encode_profile,
        interpret_device_authorization,
        interpret_poll_answer,
        login_device_request,
        poll_backoff,
        run_device_flow,
        stack_access,
        stack_device_request,
        stack_resource,
        start_polling,
    )
    from ._durations import MAX_DURATION_NS, format_duration, parse_duration, parse_ttl
    from ._endpoint import at_token_endpoint
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
    from ._fctl_grant import (
        ASSERTION_REFUSALS,
        EXCHANGE_REJECTIONS,
        REFRESH_REJECTIONS,
        FctlEffects,
        fctl_grant,
        refreshed_access,
    )
    from ._json import json_object, json_value
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
    from ._output import OUTPUTS, TOKEN_VARIABLE, URL_VARIABLE, render_token, shell_quote
    from ._paths import (
        ACCESSES_FILE,
        CACHE_FILE,
        CONFIG_FILE,
        LOCK_SUFFIX,
        MAX_NAME_BYTES,
        PROFILE_FILE,
        Segments,
        StackPaths,
        client_key,
        client_paths,
        discovery_cache_name,
        name_error,
        profile_file,
        stack_paths,
    )
    from ._profile import (
        DEFAULT_PROFILE,
        LOGIN_HINT,
        Organization,
        Profile,
        StackRef,
        decode_current_profile,
        decode_profile,
        resolve_organization,
        resolve_stack,
        stack_uri,
    )
    from ._record import Record, replace, secret
    from ._renewal import (
        HeldVerdict,
        RenewalPolicy,
        due_for_renewal,
        judge_held,
        refresh_point,
        renewal_retry_delay,
    )
    from ._requests import (
        CLIENT_CREDENTIALS_GRANT,
        DEFAULT_DISCOVERY_MAX_AGE,
        EXCHANGE_SCOPE,
        FCTL_CLIENT_ID,
        JWT_BEARER_GRANT,
        NOT_ACTED_ON_STATUSES,
        RETRYABLE_STATUSES,
        DiscoveryTarget,
        RetryPolicy,
        client_auth_method,
        client_credentials_request,
        discovery_max_age,
        exchange_request,
        interpret_discovery,
        interpret_token_response,
        membership_discovery,
        refresh_request,
        retry_delay,
        stack_discovery,
    )
    from ._results import lift, lift_reason
    from ._text import MIN_SECRET_PIECE, one_line, redact
    from ._time import UTC, datetime, timedelta, timezone
    from ._types import (
        CLOCK_SKEW_ALLOWANCE,
        DEFAULT_CACHE_TTL,
        EXPIRY_GRACE,
        CachedToken,
        ClientCredentials,
        DiscoveryDocument,
        Settings,
        StackAccess,
        StackKey,
        TokenRequest,
        TokenResponse,
    )
    from ._urls import check_endpoint_url, is_loopback, safe_url
    from ._wire import Fields, WireError, read_fields
    from ._workflow import acquire

__all__ = [
    "DEFAULT_DEVICE_INTERVAL",
    "DEFAULT_MEMBERSHIP_URI",
    "DEVICE_CODE_GRANT",
    "LOGIN_SCOPE",
    "SLOW_DOWN_STEP",
    "STACK_ACCESS_SCOPE",
    "STACK_SCOPES",
    "DeviceAuthorization",
    "DeviceEffects",
    "DeviceFail",
    "DeviceFinish",
    "DeviceSend",
    "DeviceWait",
    "LoginTokens",
    "POLL_BACKOFF_CAP",
    "DevicePolling",
    "device_login",
    "device_token_request",
    "encode_config",
    "encode_profile",
    "interpret_device_authorization",
    "interpret_poll_answer",
    "login_device_request",
    "poll_backoff",
    "run_device_flow",
    "stack_access",
    "stack_device_request",
    "stack_resource",
    "start_polling",
    "device_step",
    "ACCESSES_FILE",
    "ASSERTION_REFUSALS",
    "CACHE_FILE",
    "CLIENT_CREDENTIALS_GRANT",
    "CLIENT_REJECTIONS",
    "CLOCK_SKEW_ALLOWANCE",
    "CONFIG_FILE",
    "DEFAULT_CACHE_TTL",
    "DEFAULT_DISCOVERY_MAX_AGE",
    "DEFAULT_PROFILE",
    "EXCHANGE_REJECTIONS",
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
    "MIN_SECRET_PIECE",
    "NOT_ACTED_ON_STATUSES",
    "OUTPUTS",
    "PROFILE_FILE",
    "REFRESH_REJECTIONS",
    "RETRYABLE_STATUSES",
    "TOKEN_VARIABLE",
    "URL_VARIABLE",
    "UTC",
    "AcquireError",
    "AuthRequired",
    "CacheRead",
    "CachedToken",
    "ClientCredentials",
    "ClientEffects",
    "DiscoveryDocument",
    "DiscoveryTarget",
    "DiskVerdict",
    "FctlEffects",
    "Fields",
    "Grant",
    "HeldVerdict",
    "Idle",
    "Join",
    "LazyAction",
    "LazyState",
    "LocalError",
    "OAuthError",
    "Organization",
    "Profile",
    "Ready",
    "Record",
    "RemoteError",
    "RenewalPolicy",
    "RetryPolicy",
    "Running",
    "Segments",
    "Settings",
    "StackAccess",
    "StackKey",
    "StackPaths",
    "StackRef",
    "Start",
    "Store",
    "TokenRequest",
    "TokenResponse",
    "UsageError",
    "Use",
    "WireError",
    "acquire",
    "at_token_endpoint",
    "check_endpoint_url",
    "claims_expiry",
    "client_auth_method",
    "client_credentials_grant",
    "client_credentials_request",
    "client_key",
    "client_paths",
    "datetime",
    "decode_accesses",
    "decode_cache_entry",
    "decode_current_profile",
    "decode_discovery",
    "decode_discovery_cache",
    "decode_error_response",
    "decode_profile",
    "decode_token_response",
    "discovery_cache_name",
    "discovery_max_age",
    "due_for_renewal",
    "encode_accesses",
    "encode_cache_entry",
    "encode_discovery_cache",
    "exchange_request",
    "exit_code",
    "fctl_grant",
    "format_duration",
    "format_rfc3339",
    "fresh_until",
    "interpret_discovery",
    "interpret_token_response",
    "is_fresh",
    "is_loopback",
    "json_object",
    "json_value",
    "judge_disk_entry",
    "judge_held",
    "jwt_claims",
    "jwt_expiry",
    "lift",
    "lift_reason",
    "membership_discovery",
    "name_error",
    "needs_refresh",
    "on_forget",
    "on_request",
    "on_settle",
    "one_line",
    "parse_duration",
    "parse_rfc3339",
    "parse_ttl",
    "profile_file",
    "read_fields",
    "redact",
    "refresh_point",
    "refresh_request",
    "refreshed_access",
    "render_token",
    "renewal_retry_delay",
    "replace",
    "resolve_organization",
    "resolve_stack",
    "retry_delay",
    "safe_url",
    "secret",
    "shell_quote",
    "stack_discovery",
    "stack_paths",
    "stack_uri",
    "stamp_mismatch",
    "timedelta",
    "timezone",
    "usable_entry",
    "write_failed",
]


# Where each public name lives, for `__getattr__`; tests/test_warm_path_imports.py
# keeps it equal to `__all__`.
_HOMES = {
    "_cache": "CacheRead Grant Store usable_entry write_failed",
    "_cache_codec": (
        "GO_ZERO_TIME decode_cache_entry encode_cache_entry format_rfc3339 parse_rfc3339"
    ),
    "_client_grant": "CLIENT_REJECTIONS ClientEffects client_credentials_grant",
    "_codecs": (
        "claims_expiry decode_accesses decode_discovery decode_discovery_cache"
        " decode_error_response decode_token_response encode_accesses encode_discovery_cache"
        " jwt_claims jwt_expiry"
    ),
    "_decisions": "DiskVerdict fresh_until is_fresh judge_disk_entry needs_refresh stamp_mismatch",
    "_device": (
        "DEFAULT_DEVICE_INTERVAL DEFAULT_MEMBERSHIP_URI DEVICE_CODE_GRANT LOGIN_SCOPE"
        " SLOW_DOWN_STEP STACK_ACCESS_SCOPE STACK_SCOPES DeviceAuthorization DeviceEffects"
        " DeviceFail DeviceFinish DeviceSend DeviceWait LoginTokens POLL_BACKOFF_CAP"
        " DevicePolling device_login device_token_request encode_config encode_profile"
        " interpret_device_authorization interpret_poll_answer login_device_request"
        " poll_backoff run_device_flow stack_access stack_device_request"
        " stack_resource start_polling device_step"
    ),
    "_durations": "MAX_DURATION_NS format_duration parse_duration parse_ttl",
    "_endpoint": "at_token_endpoint",
    "_errors": (
        "EXIT_CODES AcquireError AuthRequired LocalError OAuthError RemoteError UsageError"
        " exit_code"
    ),
    "_fctl_grant": (
        "ASSERTION_REFUSALS EXCHANGE_REJECTIONS REFRESH_REJECTIONS FctlEffects fctl_grant"
        " refreshed_access"
    ),
    "_json": "json_object json_value",
    "_lazy": (
        "Idle Join LazyAction LazyState Ready Running Start Use on_forget on_request on_settle"
    ),
    "_output": "OUTPUTS TOKEN_VARIABLE URL_VARIABLE render_token shell_quote",
    "_paths": (
        "ACCESSES_FILE CACHE_FILE CONFIG_FILE LOCK_SUFFIX MAX_NAME_BYTES PROFILE_FILE Segments"
        " StackPaths client_key client_paths discovery_cache_name name_error profile_file"
        " stack_paths"
    ),
    "_profile": (
        "DEFAULT_PROFILE LOGIN_HINT Organization Profile StackRef decode_current_profile"
        " decode_profile resolve_organization resolve_stack stack_uri"
    ),
    "_record": "Record replace secret",
    "_renewal": (
        "HeldVerdict RenewalPolicy due_for_renewal judge_held refresh_point renewal_retry_delay"
    ),
    "_requests": (
        "CLIENT_CREDENTIALS_GRANT DEFAULT_DISCOVERY_MAX_AGE EXCHANGE_SCOPE FCTL_CLIENT_ID"
        " JWT_BEARER_GRANT NOT_ACTED_ON_STATUSES RETRYABLE_STATUSES DiscoveryTarget RetryPolicy"
        " client_auth_method client_credentials_request discovery_max_age exchange_request"
        " interpret_discovery interpret_token_response membership_discovery refresh_request"
        " retry_delay stack_discovery"
    ),
    "_results": "lift lift_reason",
    "_text": "MIN_SECRET_PIECE one_line redact",
    "_time": "UTC datetime timedelta timezone",
    "_types": (
        "CLOCK_SKEW_ALLOWANCE DEFAULT_CACHE_TTL EXPIRY_GRACE CachedToken ClientCredentials"
        " DiscoveryDocument Settings StackAccess StackKey TokenRequest TokenResponse"
    ),
    "_urls": "check_endpoint_url is_loopback safe_url",
    "_wire": "Fields WireError read_fields",
    "_workflow": "acquire",
}
if not TYPE_CHECKING:  # hidden from mypy, so that a misspelt name stays an error
    from ._exports import lazy_exports

    __getattr__, __dir__ = lazy_exports(globals(), _HOMES, __all__)
