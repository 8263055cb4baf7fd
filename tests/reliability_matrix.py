"""The reliability matrix: what stacktoken does under each fault, as data.

The tests in `test_reliability_remote.py` and `test_reliability_local.py` are
parametrized by these tables and assert every cell; `docs/reliability.md` is
rendered from them, and `test_reliability_docs.py` fails when the two differ.
Regenerate the document after changing a table:

    python tests/reliability_matrix.py --write
"""

from __future__ import annotations

import argparse
import enum
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CLIENT_CRASH_ROUNDS",
    "CLIENT_FAULTS",
    "CLIENT_FAULT_TEST",
    "CRASH_KILLS",
    "DOC_PATH",
    "FAILURE_FAULTS",
    "HEAVY_ENV",
    "LOCAL_FAULTS",
    "LOGIN_FAULTS",
    "REDIS_FAULTS",
    "REMOTE_FAULTS",
    "STRESS",
    "Expect",
    "ClientFault",
    "ClientStep",
    "LocalFault",
    "LoginFault",
    "Outcome",
    "RedisFault",
    "RemoteFault",
    "Step",
    "client_case_id",
    "client_cases",
    "main",
    "remote_cases",
    "render",
]

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
HEAVY_ENV = "STACKTOKEN_HEAVY"

#: SIGKILLs of the crash test: (CI, with STACKTOKEN_HEAVY=1).
CRASH_KILLS = (200, 2000)
#: Rounds of the client-credentials crash test, each killing every step of a cold
#: acquisition once: (CI, with STACKTOKEN_HEAVY=1).
CLIENT_CRASH_ROUNDS = (4, 40)
#: Stress test (processes, runs per process): (CI, with STACKTOKEN_HEAVY=1).
STRESS = ((4, 10), (16, 50))


class Step(enum.Enum):
    """The remote steps of a cold run, in order (docs/design.md §1)."""

    MEMBERSHIP_DISCOVERY = "membership discovery"
    REFRESH = "refresh"
    STACK_DISCOVERY = "stack discovery"
    EXCHANGE = "exchange"


class Outcome(enum.Enum):
    RETRIED = "retried, ok"
    EXIT_1 = "exit 1"
    EXIT_3 = "exit 3"

    @property
    def exit_code(self) -> int:
        return {Outcome.RETRIED: 0, Outcome.EXIT_1: 1, Outcome.EXIT_3: 3}[self]


@dataclass(frozen=True, slots=True)
class Expect:
    """A cell: the outcome, and how many requests the faulted endpoint received
    during the faulty run (None: not countable, the server is down)."""

    outcome: Outcome
    requests: int | None

    def __str__(self) -> str:
        if self.requests is None:
            return self.outcome.value
        plural = "" if self.requests == 1 else "s"
        return f"{self.outcome.value} ({self.requests} request{plural})"


@dataclass(frozen=True, slots=True)
class RemoteFault:
    """A row: a fault, how the tests inject it, and the outcome at each step
    (a step that is absent does not apply)."""

    id: str
    title: str
    how: str
    via: str  # "cli": `python -m stacktoken`; "library": TokenSource with a short HttpPolicy
    expect: Mapping[Step, Expect]


def _all(outcome: Outcome, requests: int | None) -> Mapping[Step, Expect]:
    return dict.fromkeys(Step, Expect(outcome, requests))


def _refresh_sent_once(outcome: Outcome, requests: int) -> Mapping[Step, Expect]:
    """Retried everywhere but at the refresh: the IdP may have received the
    request, and a refresh token is never sent again once it may be spent
    (the next run tries it again, after the error)."""
    return {**_all(outcome, requests), Step.REFRESH: Expect(Outcome.EXIT_1, 1)}


_R, _E1, _E3 = Outcome.RETRIED, Outcome.EXIT_1, Outcome.EXIT_3

REMOTE_FAULTS: tuple[RemoteFault, ...] = (
    RemoteFault(
        "refused",
        "connection refused",
        "server stopped (restarted on the same port afterwards); attempts retried with backoff",
        "cli",
        _all(_E1, None),
    ),
    RemoteFault(
        "reset_once",
        "connection closed without an answer, once",
        "`Fault.close_connection(reset=True)`; a refresh is not sent twice",
        "cli",
        _refresh_sent_once(_R, 2),
    ),
    RemoteFault(
        "timeout_once",
        "timeout, once",
        "`Fault.delay` beyond the 0.3 s timeout of the test's `HttpPolicy`; "
        "a refresh is not sent twice",
        "library",
        _refresh_sent_once(_R, 2),
    ),
    RemoteFault(
        "timeout_always",
        "timeout on every attempt",
        "three `Fault.delay`s (the retry budget is 3 attempts); a refresh is not sent twice",
        "library",
        _refresh_sent_once(_E1, 3),
    ),
    RemoteFault("s500", "500", "`Fault.status(500)`", "cli", _all(_E1, 1)),
    RemoteFault("s503_once", "503, then success", "`Fault.status(503)`", "cli", _all(_R, 2)),
    RemoteFault(
        "s429_retry_after",
        "429 with `Retry-After: 1`",
        "`Fault.rate_limited(1)`; the retry waits at least 1 s",
        "cli",
        _all(_R, 2),
    ),
    RemoteFault("garbage", "garbage body (200)", "`Fault.garbage()`", "cli", _all(_E1, 1)),
    RemoteFault("html", "HTML error page (500)", "`Fault.html_error()`", "cli", _all(_E1, 1)),
    RemoteFault(
        "missing_fields",
        "200 with required fields missing",
        "`Fault.missing_fields`: `token_endpoint` (discovery), `access_token` (token)",
        "cli",
        _all(_E1, 1),
    ),
    RemoteFault(
        "oversized",
        "body over the 1 MiB cap, with `Content-Length`",
        "`Fault.oversized(1 MiB)`",
        "cli",
        _all(_E1, 1),
    ),
    RemoteFault(
        "oversized_streamed",
        "body over the 1 MiB cap, streamed without `Content-Length`",
        "`Fault.oversized(1 MiB, send_content_length=False)`",
        "cli",
        _all(_E1, 1),
    ),
    RemoteFault(
        "wrong_issuer",
        "discovery document naming another `issuer`",
        "`Fault.wrong_issuer()` (RFC 8414 §3.3)",
        "cli",
        {Step.MEMBERSHIP_DISCOVERY: Expect(_E1, 1), Step.STACK_DISCOVERY: Expect(_E1, 1)},
    ),
    RemoteFault(
        "plain_http",
        "plain-http endpoint on a non-loopback host",
        "discovery steps: `http://example.com` as membershipURI / stack URI in profile.json; "
        "token steps: discovery names `http://example.com/...` as `token_endpoint`. "
        "Refused before any request (0 requests reach the step's endpoint)",
        "cli",
        _all(_E1, 0),
    ),
    RemoteFault(
        "credentials_in_url",
        "`user:password@` in an endpoint URL",
        "discovery steps: in membershipURI / the stack URI of profile.json; token steps: in "
        "the discovered `token_endpoint`. Refused before any request (it would become HTTP "
        "Basic), the password never shown",
        "cli",
        _all(_E1, 0),
    ),
    RemoteFault(
        "redirect",
        "redirect to the right URL (302 on GET, 307 on POST)",
        "`Fault.redirect(<the real URL>)`: not followed",
        "cli",
        _all(_E1, 1),
    ),
    RemoteFault(
        "invalid_grant",
        "400 `invalid_grant`",
        "`Fault.invalid_grant()`; at the exchange: one refresh, then one retry",
        "cli",
        {Step.REFRESH: Expect(_E3, 1), Step.EXCHANGE: Expect(_R, 2)},
    ),
)


def remote_cases() -> list[tuple[RemoteFault, Step]]:
    """Every (fault, step) cell that applies."""
    return [(fault, step) for fault in REMOTE_FAULTS for step in Step if step in fault.expect]


class ClientStep(enum.Enum):
    """The remote steps of a machine credential's cold run (docs/design.md §9)."""

    STACK_DISCOVERY = "stack discovery"
    TOKEN = "token request"


#: The test that runs every cell of `CLIENT_FAULTS`, one parametrized case a cell.
CLIENT_FAULT_TEST = (
    "tests/test_client_credentials.py::test_client_credentials_fault_outcome_as_documented"
)


@dataclass(frozen=True, slots=True)
class ClientFault:
    """A row of the client-credentials table: a fault of `REMOTE_FAULTS` (same
    id; its title and injection unless given here) or one of this grant only,
    and the outcome at each of the grant's steps (absent: does not apply)."""

    id: str
    expect: Mapping[ClientStep, Expect]
    title: str = ""
    how: str = ""

    @property
    def remote(self) -> RemoteFault | None:
        return next((fault for fault in REMOTE_FAULTS if fault.id == self.id), None)

    @property
    def shown_title(self) -> str:
        remote = self.remote
        title = self.title or (remote.title if remote is not None else self.id)
        return title + (" *(library)*" if self.via == "library" else "")

    @property
    def shown_how(self) -> str:
        remote = self.remote
        return self.how or (remote.how if remote is not None else "")

    @property
    def via(self) -> str:
        remote = self.remote
        return remote.via if remote is not None else "cli"


def _client_all(outcome: Outcome, requests: int | None) -> Mapping[ClientStep, Expect]:
    return dict.fromkeys(ClientStep, Expect(outcome, requests))


CLIENT_FAULTS: tuple[ClientFault, ...] = (
    ClientFault(
        "refused",
        _client_all(_E1, None),
        how="server stopped (restarted on the same port afterwards); attempts retried with "
        "backoff, a refused token endpoint rediscovered once",
    ),
    ClientFault(
        "reset_once",
        _client_all(_R, 2),
        how="`Fault.close_connection(reset=True)`; the request spends nothing: sent again",
    ),
    ClientFault(
        "timeout_once",
        _client_all(_R, 2),
        how="`Fault.delay` beyond the 0.3 s timeout of the test's `HttpPolicy`",
    ),
    ClientFault(
        "timeout_always",
        _client_all(_E1, 3),
        how="three `Fault.delay`s (the retry budget is 3 attempts)",
    ),
    ClientFault("s500", _client_all(_E1, 1)),
    ClientFault("s503_once", _client_all(_R, 2)),
    ClientFault("s429_retry_after", _client_all(_R, 2)),
    ClientFault("garbage", _client_all(_E1, 1)),
    ClientFault("html", _client_all(_E1, 1)),
    ClientFault("missing_fields", _client_all(_E1, 1)),
    ClientFault("oversized", _client_all(_E1, 1)),
    ClientFault("oversized_streamed", _client_all(_E1, 1)),
    ClientFault("wrong_issuer", {ClientStep.STACK_DISCOVERY: Expect(_E1, 1)}),
    ClientFault(
        "plain_http",
        _client_all(_E1, 0),
        how="discovery: `--stack-uri http://example.com`; token request: discovery names "
        "`http://example.com/...` as `token_endpoint`. Refused before any request, the "
        "secret never sent",
    ),
    ClientFault(
        "credentials_in_url",
        _client_all(_E1, 0),
        how="discovery: in `--stack-uri`; token request: in the discovered `token_endpoint`. "
        "Refused before any request, the password never shown",
    ),
    ClientFault("redirect", _client_all(_E1, 1)),
    ClientFault(
        "invalid_grant",
        {ClientStep.TOKEN: Expect(_E1, 1)},
        how="`Fault.invalid_grant()`: no refresh token here, so nothing to retry with",
    ),
    ClientFault(
        "invalid_client",
        {ClientStep.TOKEN: Expect(_E3, 1)},
        title="401 `invalid_client`",
        how="a wrong client secret, refused by the server itself",
    ),
    ClientFault(
        "unauthorized_client",
        {ClientStep.TOKEN: Expect(_E3, 1)},
        title="400 `unauthorized_client`",
        how='`Fault.status(400, "unauthorized_client")`',
    ),
)


def client_cases() -> list[tuple[ClientFault, ClientStep]]:
    """Every (fault, step) cell of the client-credentials table that applies."""
    return [(fault, step) for fault in CLIENT_FAULTS for step in ClientStep if step in fault.expect]


def client_case_id(fault: ClientFault, step: ClientStep) -> str:
    """The pytest id of a cell's case in `CLIENT_FAULT_TEST`."""
    return f"{fault.id}-{step.name.lower()}"


@dataclass(frozen=True, slots=True)
class LocalFault:
    """A local fault: what is wrong, how the test makes it so, what happens."""

    id: str
    title: str
    how: str
    via: str
    exit_code: int
    outcome: str


LOCAL_FAULTS: tuple[LocalFault, ...] = (
    LocalFault(
        "cache_is_directory",
        "`api_token_cache.json` is a directory",
        "`mkdir`",
        "cli",
        0,
        "cache miss (`not a regular file`) and write failure logged at debug; "
        "the token comes from the network; cached again once the directory is gone",
    ),
    LocalFault(
        "cache_other_owner",
        "cache file owned by another user",
        "`chown 65534`",
        "cli",
        0,
        "refused (`owned by another user` at debug), never served; replaced by our entry, 0600",
    ),
    LocalFault(
        "cache_world_writable",
        "cache file writable by others",
        "`chmod 0666`",
        "cli",
        0,
        "refused (`writable by other users` at debug); replaced by our entry, 0600",
    ),
    LocalFault(
        "cache_symlink",
        "symlink at the cache path, to a planted entry",
        "`ln -s`",
        "cli",
        0,
        "not followed (`a symbolic link` at debug), the planted token never printed; the symlink "
        "is replaced by a regular file, its target left untouched",
    ),
    LocalFault(
        "cache_garbage",
        "cache file torn / not JSON",
        "truncated JSON bytes",
        "cli",
        0,
        "cache miss at debug; overwritten by the next good write",
    ),
    LocalFault(
        "accesses_is_directory",
        "`accesses.json` is a directory",
        "`mkdir`",
        "cli",
        1,
        "one-line error naming the file (`not a regular file`); works once repaired",
    ),
    LocalFault(
        "accesses_other_owner",
        "`accesses.json` owned by another user",
        "`chown 65534`",
        "cli",
        1,
        "one-line error (`owned by another user`); works once repaired",
    ),
    LocalFault(
        "accesses_world_writable",
        "`accesses.json` writable by others",
        "`chmod 0666`",
        "cli",
        1,
        "one-line error (`writable by other users`); works once repaired",
    ),
    LocalFault(
        "accesses_symlink",
        "symlink at `accesses.json`",
        "`ln -s`",
        "cli",
        1,
        "not followed: one-line error; works once repaired",
    ),
    LocalFault(
        "accesses_garbage",
        "`accesses.json` not JSON",
        "garbage bytes",
        "cli",
        3,
        "one-line error asking for `stacktoken login`",
    ),
    LocalFault(
        "lock_is_directory",
        "the lock path cannot be a lock file",
        "`mkdir api_token_cache.json.lock`",
        "cli",
        0,
        "runs unlocked (logged at debug): the cache is best effort",
    ),
    LocalFault(
        "discovery_cache_unusable",
        "`--cache-dir` is a regular file",
        "`touch`",
        "cli",
        0,
        "discovery documents are not cached (logged at debug); tokens still issued",
    ),
    LocalFault(
        "read_only_folder",
        "read-only stack folder, token needs no refresh",
        "in-process `EROFS` on every create/rename/unlink in the folder (root ignores chmod)",
        "library",
        0,
        "token returned; cache write failure and the unlocked run logged at debug",
    ),
    LocalFault(
        "read_only_folder_refresh",
        "read-only stack folder, token needs a refresh",
        "as above, with an expired stack access token",
        "library",
        1,
        "`LocalStorageError` before the refresh is sent: the refresh token is not spent; "
        "the next run after the fault refreshes normally",
    ),
    LocalFault(
        "disk_full",
        "full disk, token needs no refresh",
        "in-process `ENOSPC` after a partial write of every file written in the folder",
        "library",
        0,
        "token returned; the previous cache file intact, no temp file left",
    ),
    LocalFault(
        "disk_full_refresh",
        "full disk, token needs a refresh",
        "as above, with an expired stack access token",
        "library",
        1,
        "`LocalStorageError` before the refresh is sent: `accesses.json` intact and its "
        "refresh token still valid; the next run after the fault refreshes normally",
    ),
)


@dataclass(frozen=True, slots=True)
class Attack:
    """A row of the security table: what an attacker does, what happens, which test shows it."""

    attack: str
    outcome: str
    test: str


ATTACKS: tuple[Attack, ...] = (
    Attack(
        "another user owns, or can write, `profile.json` or `config.yml`, pointing the stack "
        "URI or `membershipURI` at their own server (or plants a symlink there)",
        "refused like a token file (ours, regular, not writable by others, no symlink "
        "followed): exit 1 naming the file; their server gets nothing",
        "tests/test_security_profile_trust.py",
    ),
    Attack(
        "a server drips its response headers a byte at a time, each within the read timeout",
        "one deadline bounds the whole request (connect, headers, body): the client hangs up "
        "at the deadline, exit 1 `timed out`",
        "tests/test_security_http.py::test_http_headers_dripping_past_the_deadline_are_a_timeout",
    ),
    Attack(
        "a 1.8 KB reply with `Content-Encoding: gzip, gzip` that inflates to gigabytes",
        "`Accept-Encoding: identity` is sent; gzip/deflate is inflated within the 1 MiB cap "
        "(peak memory under 32 MiB), other encodings refused: exit 1",
        "tests/test_security_http.py::test_http_gzip_bomb_is_refused_within_the_size_cap_of_memory",
    ),
    Attack(
        "a server quotes our assertion or refresh token back, in `error` or "
        "`error_description`, whole, as a prefix, split in two, or its JWT signature",
        "every run of 8 or more characters shared with a secret the request carried "
        "becomes `[redacted]` in every field",
        "tests/test_security_redaction.py, property_tests/test_redaction_properties.py",
    ),
    Attack(
        "a proxy set in the environment (`HTTP_PROXY`, `ALL_PROXY`) to receive loopback "
        "traffic, tokens in clear text",
        "loopback is never proxied (as fctl's Go transport); other hosts still use the "
        "environment's proxy and `NO_PROXY`",
        "tests/test_security_http.py::test_http_loopback_is_never_sent_through_a_proxy",
    ),
    Attack(
        "`SSL_CERT_FILE` names a file that cannot be loaded",
        "one line naming the variable and the reason, exit 1 (not an unexpected exception)",
        "tests/test_security_http.py::test_http_unloadable_ca_file_is_a_clear_error",
    ),
    Attack(
        "the stack URI in `profile.json` changes while a token is cached for the old one",
        "the entry is stamped with the URI it was issued for and not served for another",
        "tests/test_security_files.py::"
        "test_token_cached_for_one_stack_uri_is_not_served_once_the_uri_changed",
    ),
    Attack(
        "a folder on the way (the stack folder mid-refresh, a folder of a shared cache dir, "
        "an organization folder under `cache clear`) swapped for a symlink out of the dir",
        "every segment below the config or cache dir is opened relative to its parent "
        "without following a symlink: nothing is written, read or removed through it",
        "tests/test_security_files.py",
    ),
    Attack(
        "`user:password@` in a profile or discovered URL (it would become HTTP Basic)",
        "refused before any request, the password never shown (fault matrix row "
        "`credentials_in_url`)",
        "tests/test_reliability_remote.py",
    ),
    Attack(
        "a 0644 `accesses.json` or a 0777 stack folder of ours",
        "tightened to 0600 / 0700 and said at debug; a foreign one is refused",
        "tests/test_security_files.py::"
        "test_loose_modes_of_our_own_files_and_folders_are_tightened_and_said",
    ),
)


@dataclass(frozen=True, slots=True)
class RedisFault:
    """A row of the shared-store table: the fault, how it is made, what happens, its test."""

    fault: str
    how: str
    outcome: str
    test: str


_STORE = "tests/test_redis_store.py::"
_FLEET = "tests/test_redis_fleet.py::"
_UNREACHABLE = _STORE + "test_redis_store_unreachable_call_succeeds_with_one_failed_redis_call"

REDIS_FAULTS: tuple[RedisFault, ...] = (
    RedisFault(
        "Redis down (connection refused)",
        "server stopped",
        "token from the host's disk or the network; one failed call logged at debug, then "
        "the breaker skips Redis for 5 s (miss, write failed, unlocked)",
        _UNREACHABLE,
    ),
    RedisFault(
        "Redis stalled",
        "SIGSTOP: the kernel accepts, nobody answers",
        "as above, after one 200 ms timeout (`TimeoutError` at debug)",
        _UNREACHABLE,
    ),
    RedisFault(
        "a black hole on the Redis port",
        "a TCP server that reads and never answers",
        "as above, after one 200 ms timeout",
        _UNREACHABLE,
    ),
    RedisFault(
        "garbage server on the Redis port",
        "a TCP server answering non-RESP bytes",
        "as above (`InvalidResponse` at debug)",
        _UNREACHABLE,
    ),
    RedisFault(
        "wrong Redis password",
        "`requirepass`, another password in the URL",
        "as above (`AuthenticationError` at debug); no password in any line",
        _UNREACHABLE,
    ),
    RedisFault(
        "Redis full",
        "`maxmemory 1`, `noeviction`: `OOM` on every SET",
        "the lock's SET refused: the body runs unlocked (the host's flock still holds); "
        "the write failure logged at debug; the breaker stays closed (a live server)",
        _STORE + "test_redis_store_full_call_succeeds_and_write_failure_is_logged",
    ),
    RedisFault(
        "garbage value at the key",
        "not JSON, not UTF-8, wrong fields, a list",
        "a miss (`redis value unreadable` at debug); overwritten by the new token",
        _STORE
        + "test_redis_store_garbage_value_is_a_miss_and_is_overwritten, "
        + _STORE
        + "test_redis_store_value_of_another_type_is_a_miss_and_is_overwritten",
    ),
    RedisFault(
        "Redis SIGKILLed mid-run, restarted empty later",
        "4 hosts x 2 processes over four TTL windows",
        "every call succeeds; while it is down at most one request per host and window; "
        "once back, one request per window for the fleet again",
        _FLEET + "test_fleet_redis_killed_mid_run_every_call_succeeds",
    ),
    RedisFault(
        "lock holder SIGKILLed",
        "a process takes the lock (1 s lease) and is killed",
        "the others wait out the lease, one takes the lock: one request for 4 hosts x 2",
        _FLEET + "test_fleet_holder_sigkilled_with_the_lock_others_proceed_after_the_lease",
    ),
    RedisFault(
        "lock held by a live process past the wait",
        "a lock with a 60 s lease, a 0.05 s wait",
        "the body runs unlocked when the wait is over (at debug)",
        _STORE + "test_redis_store_lock_not_had_in_time_runs_the_body_unlocked",
    ),
)


@dataclass(frozen=True, slots=True)
class LoginFault:
    """A row of the login table: what goes wrong during a device-flow login, how the
    test makes it so, what happens, and the test that shows it."""

    fault: str
    how: str
    outcome: str
    test: str


_LOGIN = "tests/test_cli_login.py::"
_NOTHING = "nothing written (no `profile.json`, no `config.yml`)"

LOGIN_FAULTS: tuple[LoginFault, ...] = (
    LoginFault(
        "the user denies the code",
        "`deny_device` through the IdP: polls get `access_denied`",
        f"exit 3 `the login was denied; ... stacktoken login`; {_NOTHING}",
        _LOGIN + "test_login_denied_or_expired_exits_3_and_writes_nothing",
    ),
    LoginFault(
        "the IdP expires the code",
        "`expire_device_code`: polls get `expired_token`",
        f"exit 3 `the login code expired before it was approved`; {_NOTHING}",
        _LOGIN + "test_login_denied_or_expired_exits_3_and_writes_nothing",
    ),
    LoginFault(
        "nobody approves before `expires_in`",
        "`expires_in` 0.5 s, never approved",
        f"polls stop by `expires_in` (counted from before the device request): exit 3 "
        f"`expired`; {_NOTHING}",
        _LOGIN + "test_login_expires_by_itself_after_expires_in",
    ),
    LoginFault(
        "`slow_down`",
        "scripted `slow_down`, the IdP enforcing the interval",
        "the interval grows by 5 s (RFC 8628 §3.5), no poll early; logged in",
        _LOGIN + "test_login_slow_down_raises_the_interval_by_five_seconds",
    ),
    LoginFault(
        "polls failing: 503; an unreadable 200 then a proxy's 502 page; a connection "
        "reset then closed",
        "`fail_device_polls` (two faulted polls), approved after them",
        "each poll sent once, the next after 2 x then 4 x the interval (at debug: "
        "`poll failed (...; 1 in a row), polling again in ...`), none early; logged in",
        _LOGIN + "test_login_transient_poll_failures_back_off_then_log_in",
    ),
    LoginFault(
        "a poll timing out *(library)*",
        "`Fault.delay` held past a 0.3 s `HttpPolicy` timeout",
        "backed off (2 x the interval), asked again; logged in",
        _LOGIN + "test_login_poll_timeout_backs_off_then_logs_in",
    ),
    LoginFault(
        "the IdP down while polling *(library)*",
        "IdP stopped right after the device answer: the poll is refused; restarted and "
        "approved when the backoff is logged",
        "backed off (2 x the interval, `cannot connect` at debug), asked again; logged in",
        _LOGIN + "test_login_poll_refused_while_the_idp_is_down_backs_off_then_logs_in",
    ),
    LoginFault(
        "the IdP failing until the code expires",
        "every poll answered 503, `expires_in` 1 s, interval 0.1 s",
        "at most 5 polls (backed off, the last at `expires_in` minus one interval), then "
        f"exit 3 `expired` naming the last failure (`503`); {_NOTHING}",
        _LOGIN + "test_login_idp_failing_until_the_code_expires_exits_3_naming_it",
    ),
    LoginFault(
        "ID token with a bad signature, wrong `iss`, wrong `aud`, or expired",
        "`id_token_defect` on the IdP, approved",
        f"verified with the IdP's JWKS before anything is written: exit 3 `the ID token "
        f"was refused (bad signature / wrong issuer / wrong audience / expired)`; {_NOTHING}",
        _LOGIN + "test_login_id_token_defect_exits_3_and_writes_nothing",
    ),
    LoginFault(
        "Ctrl-C while polling",
        "SIGINT after the first poll, then approved",
        f"exit 130 `interrupted`; {_NOTHING}, even once approved",
        _LOGIN + "test_login_ctrl_c_exits_130_and_writes_nothing",
    ),
    LoginFault(
        "IdP down at discovery",
        "IdP stopped: connections refused",
        f"exit 1 `cannot connect` (after the bounded retries); {_NOTHING}; the next "
        "login works once it is back",
        _LOGIN + "test_login_idp_down_at_discovery_exits_1_and_writes_nothing",
    ),
    LoginFault(
        "`token` needs a stack access, not on a terminal",
        "stdin `/dev/null`, stderr a pipe, no `--login`",
        "exit 3 at once with the hint `stacktoken login --organization O --stack S` or "
        "`stacktoken token --login`; no device flow, never a hidden prompt",
        _LOGIN + "test_login_token_in_a_script_exits_3_without_waiting",
    ),
)


def _cell(fault: RemoteFault, step: Step) -> str:
    expect = fault.expect.get(step)
    return "n/a" if expect is None else str(expect)


def _client_cell(fault: ClientFault, step: ClientStep) -> str:
    expect = fault.expect.get(step)
    return "n/a" if expect is None else str(expect)


_FAILMEM = "tests/test_failure_memory.py::"

#: Failure memory (docs/design.md §15): the failing credential or endpoint, and its entry.
FAILURE_FAULTS: tuple[RedisFault, ...] = (
    RedisFault(
        "a wrong client secret, 20 processes x 3 runs",
        "a secret the stack does not know (`invalid_client`)",
        "at most 2 token requests in all; each run exits 3 with one line (remembered "
        "60 s: how long ago, until when); the right secret then costs exactly 1",
        _FAILMEM + "test_wrong_secret_fleet_asks_at_most_twice_then_the_right_one_at_once",
    ),
    RedisFault(
        "the token endpoint answers 503 to everything",
        "`Fault.status(503)` on every token request, 20 cold processes",
        "at most 6 token requests; each exits 1 with one line (a jittered backoff "
        "from 1 s, doubling to 30 s, shared through the cache dir)",
        _FAILMEM + "test_endpoint_answering_503_to_everything_is_asked_at_most_six_times",
    ),
    RedisFault(
        "a wrong secret on two hosts sharing a Redis",
        "two cache dirs, one `redis-server`",
        "the second host makes no request within the window (the `…:failure` key); "
        "no key or value holds the secret",
        _FAILMEM + "test_two_hosts_on_one_redis_second_host_makes_no_request",
    ),
    RedisFault(
        "a profile's refresh token revoked",
        "`invalid_grant` on the refresh, still after the re-read of `accesses.json`",
        "remembered under the cache dir, never in the stack folder; a new login is tried at once",
        _FAILMEM
        + "test_profile_refresh_rejected_is_remembered_under_the_cache_dir_until_a_new_login",
    ),
    RedisFault(
        "a corrupt failure entry",
        "`failure.json` overwritten with garbage",
        "a miss: the credential is tried again",
        _FAILMEM + "test_a_corrupt_failure_entry_is_a_miss",
    ),
)


def render() -> str:
    """`docs/reliability.md`, from the tables above."""
    ci_kills, heavy_kills = CRASH_KILLS
    client_ci, client_heavy = CLIENT_CRASH_ROUNDS
    (ci_procs, ci_runs), (heavy_procs, heavy_runs) = STRESS
    steps = list(Step)
    lines = [
        "# Reliability: faults, crashes and concurrency",
        "",
        "<!-- Generated by `python tests/reliability_matrix.py --write` from the tables",
        "     the tests run; `tests/test_reliability_docs.py` fails if this file drifts. -->",
        "",
        "stacktoken's promises under failure, each one asserted by a test against real",
        "loopback OAuth servers (`tests/oauth_servers.py`):",
        "",
        "- an error is exactly one line, `stacktoken: error: ...`, with exit code 1",
        "  (network, server, protocol, local) or 3 (log in again), and never a traceback;",
        "- no file is corrupted or lost: after every faulty run `accesses.json` decodes",
        "  and its refresh token is still valid at the IdP, the cache file (if any)",
        "  decodes, and the stack folder holds only `accesses.json`,",
        "  `api_token_cache.json` and `api_token_cache.json.lock`;",
        "- the next run succeeds once the fault is gone and the failure memory's time",
        "  for it is over (docs/design.md §15: a rejection is remembered 60 s, a transient",
        "  failure 1 s doubling to 30 s, jittered; within that time the same run fails",
        "  at once, without a request). The tests end that time by editing the entry;",
        "  a run that succeeds leaves no failure remembered.",
        "",
        "## Remote faults",
        "",
        "A cold run has up to four remote steps. The membership steps are tested with",
        "an expired stack access token (so a refresh is due), the stack steps with a",
        "fresh one; the token steps start with their discovery document cached. Rows",
        "marked *library* run through `TokenSource.from_fctl(http_policy=...)` with a",
        "0.3 s timeout (the CLI's is 10 s); the others run `python -m stacktoken token`.",
        "A cell gives the outcome and the number of requests the faulted endpoint",
        "received (`tests/test_reliability_remote.py`).",
        "",
        "| fault | " + " | ".join(step.value for step in steps) + " | injected as |",
        "|---|" + "---|" * len(steps) + "---|",
    ]
    for fault in REMOTE_FAULTS:
        title = fault.title + (" *(library)*" if fault.via == "library" else "")
        cells = " | ".join(_cell(fault, step) for step in steps)
        lines.append(f"| {title} | {cells} | {fault.how} |")
    lines += [
        "",
        "Retries: connect errors, timeouts, 429, 502, 503 and 504, at most 3 attempts,",
        "jittered exponential backoff, `Retry-After` honoured up to 10 s. A 500 is not",
        "retried. A refresh answered 200 without `access_token` has still rotated the",
        "refresh token at the IdP: the new refresh token it carries is saved, so the",
        "next run refreshes normally. A refresh token is spent at most once by a request",
        "the IdP may have received: a refresh is resent only after an answer proving it",
        "never arrived (a refused connection, a 404, 429 or 503); after a timeout or a",
        "reset, the run stops, and the next run tries the same refresh token again.",
        "",
        "## Remote faults of machine credentials (client credentials, docs/design.md §9)",
        "",
        "The same faults at the two remote steps of `stacktoken token --stack-uri URI",
        "--client-id ID` (the secret in `STACKTOKEN_CLIENT_SECRET`): stack discovery,",
        "then the RFC 6749 §4.4 token request; the token step starts with its discovery",
        "document cached. *library* rows run `TokenSource.from_client_credentials` with",
        "the 0.3 s `HttpPolicy`. The request spends nothing, so it is retried wherever",
        "retrying is allowed at all. After every faulty run the cache holds nothing or",
        "a decodable entry, no error line carries the secret, and the next run works",
        "(once the failure memory's time is over, as above).",
        "Each cell is the case of the same id of",
        f"`{CLIENT_FAULT_TEST}`.",
        "",
        "| fault | "
        + " | ".join(step.value for step in ClientStep)
        + " | injected as | test cases |",
        "|---|" + "---|" * len(ClientStep) + "---|---|",
    ]
    for client_fault in CLIENT_FAULTS:
        cells = " | ".join(_client_cell(client_fault, step) for step in ClientStep)
        cases = ", ".join(
            f"`{client_case_id(client_fault, step)}`"
            for step in ClientStep
            if step in client_fault.expect
        )
        lines.append(
            f"| {client_fault.shown_title} | {cells} | {client_fault.shown_how} | {cases} |"
        )
    lines += [
        "",
        "## Local faults",
        "",
        "Tests run as root, whom `chmod` does not stop: read-only folders and full",
        "disks are injected in-process (`tests/test_reliability_local.py`). Before a",
        "refresh, which spends the single-use refresh token, a 4 KiB probe is written",
        "beside `accesses.json` (temp file, fsync, unlink): a folder that cannot take",
        "the rotated token fails the run *before* the refresh is sent.",
        "",
        "| fault | injected as | run | exit | outcome |",
        "|---|---|---|---|---|",
    ]
    for local in LOCAL_FAULTS:
        lines.append(
            f"| {local.title} | {local.how} | {local.via} | {local.exit_code} | {local.outcome} |"
        )
    lines += [
        "",
        "## Security: hostile files, servers and environments",
        "",
        "Each attack was reproduced on 127.0.0.1 before its fix; its test fails without",
        "the fix.",
        "",
        "| attack | outcome | test |",
        "|---|---|---|",
    ]
    for attack in ATTACKS:
        lines.append(f"| {attack.attack} | {attack.outcome} | `{attack.test}` |")
    lines += [
        "",
        "## Login: the device flow (docs/design.md §13)",
        "",
        "`stacktoken login` against the loopback IdP's real RFC 8628 grant (authlib's",
        "`DeviceCodeGrant`), approved or refused by the test through the IdP's own",
        "endpoint (`tests/test_cli_login.py`). Polls never come faster than the",
        "interval. A poll that gets no usable answer (a refused, reset or closed",
        "connection, a timeout, a 429 or 5xx, an unreadable 200) is sent once, with",
        "no HTTP-level retry, and the next one waits the interval doubled per failure",
        "in a row, at most 60 s (RFC 8628 §3.5), pulled back to the code's last",
        "chance (`expires_in` minus one interval) so that an outage that ends in time",
        "still lets the approval through. The code's `expires_in` ends the flow",
        "whatever happens. Nothing is written before a verified success.",
        "",
        "| fault | injected as | outcome | test |",
        "|---|---|---|---|",
    ]
    for login_fault in LOGIN_FAULTS:
        lines.append(
            f"| {login_fault.fault} | {login_fault.how} | {login_fault.outcome} "
            f"| `{login_fault.test}` |"
        )
    lines += [
        "",
        "## Shared store: Redis (docs/design.md §11)",
        "",
        "A machine credential's token with `--store URL` / `STACKTOKEN_REDIS_URL` /",
        "`RedisStore`: memory, the host's disk, Redis, the network. The shared store",
        "never fails a call: every Redis call has a 200 ms socket timeout and no retry;",
        "a failure is one debug line and the call goes on with the host's disk and the",
        "network. Each row runs against a real `redis-server` on 127.0.0.1",
        "(`tests/redis_server.py`); a host is a cache dir of its own.",
        "",
        "| fault | injected as | outcome | test |",
        "|---|---|---|---|",
    ]
    for redis_fault in REDIS_FAULTS:
        lines.append(
            f"| {redis_fault.fault} | {redis_fault.how} | {redis_fault.outcome} "
            f"| `{redis_fault.test}` |"
        )
    lines += [
        "",
        "Single flight across hosts (`tests/test_redis_fleet.py`): 4 hosts x 8 CLI",
        "processes on a cold cache make one token request (the disk store alone: one",
        "per host); 4 hosts x 2 processes over three TTL windows make one per window.",
        "No key name holds a token (`MONITOR`), no `--debug` line a token or the",
        "Redis password.",
        "",
        "## Failure memory (docs/design.md §15)",
        "",
        "A rejected credential or a failing token endpoint is remembered where the",
        "token would have gone (the cache dir; Redis for a fleet), keyed as the token",
        "is plus an scrypt fingerprint of the secret: within the window a call fails",
        "at once. No file under the cache dir, no Redis key or value, holds the secret.",
        "",
        "| fault | injected as | outcome | test |",
        "|---|---|---|---|",
    ]
    for failure_fault in FAILURE_FAULTS:
        lines.append(
            f"| {failure_fault.fault} | {failure_fault.how} | {failure_fault.outcome} "
            f"| `{failure_fault.test}` |"
        )
    lines += [
        "",
        "## Single flight (`tests/test_concurrency_single_flight.py`)",
        "",
        "- 8 CLI processes started together on a cold cache (the exchange delayed so",
        "  that all of them queue on the lock) print the same token; the IdP sees one",
        "  refresh and the stack one exchange.",
        "- 32 threads sharing one `TokenSource`, and 32 threads each with its own",
        "  `TokenSource`: one token, one exchange.",
        "- TTL 0: no lock file and no cache file are ever created. Without the lock,",
        "  8 processes due for a refresh race with one single-use refresh token: the",
        "  IdP rejects all but one, and each loser waits (up to 1 s) for the winner's",
        "  rotation to land in `accesses.json` and uses it. All 8 succeed.",
        "- The lock wait is bounded: with the lock held elsewhere,",
        "  `TokenSource.from_fctl(lock_timeout=...)` raises `LocalStorageError` in time",
        "  (default 30 s).",
        "- A lock held by a SIGKILLed process does not block: `flock` dies with its",
        "  holder; the lock file stays and the next run takes it at once.",
        "- Machine credentials (`tests/test_client_credentials.py`): 8 CLI processes,",
        "  32 threads on one `TokenSource.from_client_credentials`, and 32 threads over",
        "  4 sources sharing a cache dir each make one token request. Every racer is",
        "  seen finding the cache cold while the token endpoint holds its answer",
        "  (`Fault.hold`), so the overlap is certain, not timed.",
        "",
        "## Crash safety (`tests/test_crash_writes.py`, `tests/test_crash_refresh.py`)",
        "",
        "- A writer (`tests/crash_writer.py`) loops over `write_atomic` of",
        "  `api_token_cache.json` and `accesses.json` under the stack lock, alternating",
        "  two contents, stops at a step the test chooses (lock taken; temp file",
        "  created, filled, fsynced; renamed), reports it, and is SIGKILLed there, so",
        f"  every kill lands inside a write whatever the machine's speed: {ci_kills}",
        f"  kills in CI, {heavy_kills} with `{HEAVY_ENV}=1`, every step of both files",
        "  hit. After every kill both files decode and hold exactly the old or the new",
        "  bytes; a kill before the rename leaves exactly that write's temp file, at",
        "  most one per target, and the next write of that file removes it.",
        "- A run killed right after the refresh response (during stack discovery or",
        "  the exchange) has already saved the rotated refresh token: the next run",
        "  works without a login.",
        "- fctl (which takes no lock) rotating the refresh token between our read and",
        "  our refresh: the IdP answers `invalid_grant`, `accesses.json` is re-read,",
        "  and its new token is used.",
        "- Machine credentials: cold client-credentials acquisitions",
        "  (`tests/client_crash_run.py`, forked from one interpreter) stop at a step",
        "  the test chooses (lock taken; discovery document created, filled, fsynced,",
        "  renamed; token answer received; cache entry created, filled, fsynced,",
        f"  renamed) and are SIGKILLed there, every step {client_ci} times in CI,",
        f"  {client_heavy} with `{HEAVY_ENV}=1`, in a shuffled order. The entry is",
        "  always the old bytes or a token the stack issued, and the next run gets a",
        "  token (`tests/test_client_credentials.py`).",
        "",
        "## Stress (`tests/test_stress_cli.py`)",
        "",
        f"{ci_procs} processes x {ci_runs} runs in CI, {heavy_procs} x {heavy_runs} with",
        f"`{HEAVY_ENV}=1`, of `token` mixed with `cache clear` on one stack: zero",
        "failures, zero tracebacks, one refresh, and no more exchanges than the clears",
        "and TTL windows require: half of the processes use a 2 s TTL, so the bound is",
        "1 + clears + (run time / 2 s) + 1. Every token printed was issued by one",
        "exchange and is accepted by the stack's API.",
        "",
        "## Known limits",
        "",
        "- Leftovers are swept per file, by the next write of that file under the",
        "  lock: a warm run writes nothing, so a killed writer's `accesses.json` temp",
        "  file stays until the next refresh (bounded: one per file).",
        "- A refresh the IdP processes after we gave up (timeout) spends the refresh",
        "  token; the next refresh is rejected and asks for `stacktoken login`.",
        "- A refresh token that is really rejected is reported up to 1 s later than",
        "  it could be: the time given to a concurrent writer's rotation to land.",
        "- A discovery document is written without a lock (one stack's document",
        "  serves every profile and client using it), so its write sweeps only temp",
        "  files older than 10 minutes: a run killed inside that write leaves one temp",
        "  file in `discovery/` until a write of the same document 10 minutes later.",
        "",
        "## Running",
        "",
        "```",
        "python -m pytest tests/test_reliability_*.py tests/test_concurrency_*.py \\",
        "    tests/test_crash_*.py tests/test_stress_*.py          # CI setting",
        f"{HEAVY_ENV}=1 python -m pytest tests/test_crash_*.py tests/test_stress_*.py",
        "python tests/reliability_matrix.py --write               # regenerate this file",
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the document, or `--write` it to docs/reliability.md, or `--check` it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {DOC_PATH.name}")
    mode.add_argument("--check", action="store_true", help=f"fail if {DOC_PATH.name} differs")
    options = parser.parse_args(argv)
    text = render()
    if options.write:
        DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
        DOC_PATH.write_text(text, encoding="utf-8")
    elif options.check:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
        if current != text:
            sys.stderr.write(f"{DOC_PATH} is out of date: python {__file__} --write\n")
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
