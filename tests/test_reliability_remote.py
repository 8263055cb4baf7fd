"""The remote half of the fault matrix: every (fault, step) cell of
`reliability_matrix.REMOTE_FAULTS`, against the loopback OAuth servers.

Each case arms one fault at one step, runs once and asserts the cell's outcome
(and how many requests the faulted endpoint saw), checks that no file was
corrupted or lost, disarms the fault and asserts that the next run works.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from oauth_servers import Fault, LoopbackOAuthServer
from reliability_helpers import (
    BLACK_HOLE_SECONDS,
    assert_files_intact,
    assert_ok,
    assert_one_line_error,
    let_failures_expire,
    library_source,
    prime_discovery,
    write_accesses,
)
from reliability_matrix import REMOTE_FAULTS, Expect, Outcome, RemoteFault, Step, remote_cases
from stacktoken import StackTokenError

from conftest import World

ONE_MIB = 1 << 20
PLAIN_HTTP_HOST = "http://example.com"
URL_PASSWORD = "hunter2-url-password"


@dataclass
class Armed:
    """A fault in place: the endpoint it targets, the endpoints whose queued
    faults must all be consumed, and how to take it away."""

    server: LoopbackOAuthServer
    endpoint: str
    injected: list[tuple[LoopbackOAuthServer, str]] = field(default_factory=list)
    disarm: Callable[[], object] = lambda: None


def _endpoint(world: World, step: Step) -> tuple[LoopbackOAuthServer, str]:
    match step:
        case Step.MEMBERSHIP_DISCOVERY:
            return world.membership, world.membership.DISCOVERY
        case Step.REFRESH:
            return world.membership, world.membership.TOKEN
        case Step.STACK_DISCOVERY:
            return world.stack, world.stack.DISCOVERY
        case Step.EXCHANGE:
            return world.stack, world.stack.TOKEN


def _url(world: World, step: Step) -> str:
    return {
        Step.MEMBERSHIP_DISCOVERY: world.membership.discovery_url,
        Step.REFRESH: world.membership.token_endpoint,
        Step.STACK_DISCOVERY: world.stack.discovery_url,
        Step.EXCHANGE: world.stack.token_endpoint,
    }[step]


def _is_discovery(step: Step) -> bool:
    return step in (Step.MEMBERSHIP_DISCOVERY, Step.STACK_DISCOVERY)


def _prepare(world: World, step: Step, fault_id: str) -> None:
    """Membership steps need a refresh due; token steps start from a cached
    discovery document, so that the fault hits the step itself."""
    if step in (Step.MEMBERSHIP_DISCOVERY, Step.REFRESH):
        write_accesses(world, exp_in=-120)
    if fault_id in ("plain_http", "credentials_in_url"):
        return  # the token endpoint comes from a (faulted) discovery answer
    if step is Step.REFRESH:
        prime_discovery(world, "membership")
    if step is Step.EXCHANGE:
        prime_discovery(world, "stack")


def _edit_profile(world: World, edit: Callable[[dict[str, object]], None]) -> Callable[[], object]:
    path = world.profile.profile_path
    original = path.read_bytes()
    document = json.loads(original)
    edit(document)
    path.write_text(json.dumps(document))
    return lambda: path.write_bytes(original)


def _plain_http_stack(document: dict[str, object]) -> None:
    root = document["rootTokens"]
    assert isinstance(root, dict)
    for organization in root["idToken"]["claims"]["org"]:
        for stack in organization["stacks"]:
            stack["uri"] = PLAIN_HTTP_HOST


def _expectation(fault_id: str, step: Step) -> Expect:
    return next(fault for fault in REMOTE_FAULTS if fault.id == fault_id).expect[step]


def _arm(world: World, fault_id: str, step: Step) -> Armed:
    server, endpoint = _endpoint(world, step)
    armed = Armed(server, endpoint)

    def inject(*faults: Fault, at: tuple[LoopbackOAuthServer, str] | None = None) -> None:
        target_server, target = at or (server, endpoint)
        target_server.inject(target, *faults)
        armed.injected.append((target_server, target))

    match fault_id:
        case "refused":
            server.stop()
            armed.disarm = server.start
        case "reset_once":
            inject(Fault.close_connection(reset=True))
        case "timeout_once":
            inject(Fault.delay(BLACK_HOLE_SECONDS))
        case "timeout_always":
            # One delay per request the step is expected to receive: three
            # attempts, or one for a refresh (never sent twice).
            expected = _expectation("timeout_always", step).requests or 0
            inject(*[Fault.delay(BLACK_HOLE_SECONDS)] * expected)
        case "s500":
            inject(Fault.status(500))
        case "s503_once":
            inject(Fault.status(503))
        case "s429_retry_after":
            inject(Fault.rate_limited(1))
        case "garbage":
            inject(Fault.garbage())
        case "html":
            inject(Fault.html_error())
        case "missing_fields":
            missing = "token_endpoint" if _is_discovery(step) else "access_token"
            inject(Fault.missing_fields(missing))
        case "oversized":
            inject(Fault.oversized(ONE_MIB))
        case "oversized_streamed":
            inject(Fault.oversized(ONE_MIB, send_content_length=False))
        case "wrong_issuer":
            inject(Fault.wrong_issuer())
        case "plain_http":
            _arm_plain_http(world, step, armed, inject)
        case "credentials_in_url":
            _arm_credentials(world, step, armed, inject)
        case "redirect":
            inject(Fault.redirect(_url(world, step), status=302 if _is_discovery(step) else 307))
        case "invalid_grant":
            inject(Fault.invalid_grant())
        case _:
            raise AssertionError(f"no way to inject {fault_id!r}")
    return armed


def _arm_plain_http(
    world: World,
    step: Step,
    armed: Armed,
    inject: Callable[..., None],
) -> None:
    match step:
        case Step.MEMBERSHIP_DISCOVERY:
            armed.disarm = _edit_profile(
                world, lambda doc: doc.update(membershipURI=f"{PLAIN_HTTP_HOST}/api")
            )
        case Step.STACK_DISCOVERY:
            armed.disarm = _edit_profile(world, _plain_http_stack)
        case Step.REFRESH:
            endpoint = f"{PLAIN_HTTP_HOST}/api/oauth/token"
            inject(
                Fault.override_fields(token_endpoint=endpoint),
                at=(world.membership, world.membership.DISCOVERY),
            )
        case Step.EXCHANGE:
            endpoint = f"{PLAIN_HTTP_HOST}/api/auth/oauth/token"
            inject(
                Fault.override_fields(token_endpoint=endpoint),
                at=(world.stack, world.stack.DISCOVERY),
            )


def _with_credentials(url: str) -> str:
    """`url` (loopback, otherwise valid) with a user and password in it."""
    return url.replace("http://", f"http://stacktoken-user:{URL_PASSWORD}@", 1)


def _arm_credentials(
    world: World,
    step: Step,
    armed: Armed,
    inject: Callable[..., None],
) -> None:
    match step:
        case Step.MEMBERSHIP_DISCOVERY:
            uri = _with_credentials(world.membership.base_url)
            armed.disarm = _edit_profile(world, lambda doc: doc.update(membershipURI=uri))
        case Step.STACK_DISCOVERY:
            uri = _with_credentials(world.stack.origin)

            def credentialed(document: dict[str, object]) -> None:
                root = document["rootTokens"]
                assert isinstance(root, dict)
                for organization in root["idToken"]["claims"]["org"]:
                    for stack in organization["stacks"]:
                        stack["uri"] = uri

            armed.disarm = _edit_profile(world, credentialed)
        case Step.REFRESH:
            inject(
                Fault.override_fields(
                    token_endpoint=_with_credentials(world.membership.token_endpoint)
                ),
                at=(world.membership, world.membership.DISCOVERY),
            )
        case Step.EXCHANGE:
            inject(
                Fault.override_fields(token_endpoint=_with_credentials(world.stack.token_endpoint)),
                at=(world.stack, world.stack.DISCOVERY),
            )


def _run_faulty(world: World, fault: RemoteFault, outcome: Outcome) -> str:
    """One run under the fault; returns what the user saw (token or error line)."""
    if fault.via == "library":
        with library_source(world) as source:
            try:
                token = source.token()
            except StackTokenError as error:
                assert error.exit_code == outcome.exit_code, error
                message = str(error)
                assert "\n" not in message and message, message
                return message
            assert outcome.exit_code == 0
            return token
    result = world.run("token")
    if outcome.exit_code == 0:
        return assert_ok(result)
    return assert_one_line_error(result, outcome.exit_code)


@pytest.mark.parametrize(
    ("fault", "step"),
    remote_cases(),
    ids=[f"{fault.id}-{step.name.lower()}" for fault, step in remote_cases()],
)
def test_remote_fault_outcome_as_documented(world: World, fault: RemoteFault, step: Step) -> None:
    """The faulty run ends as the matrix says, loses nothing, and the next run works."""
    expect = fault.expect[step]
    _prepare(world, step, fault.id)
    secrets = [world.profile.accesses_path.read_text()]
    armed = _arm(world, fault.id, step)
    world.membership.reset_counts()
    world.stack.reset_counts()

    started = time.monotonic()
    seen = _run_faulty(world, fault, expect.outcome)
    elapsed = time.monotonic() - started

    if expect.outcome.exit_code != 0:
        for document in secrets:
            for value in json.loads(document).values():
                if isinstance(value, str):
                    assert value not in seen, "a token reached the error message"
    if expect.requests is not None:
        assert armed.server.count(armed.endpoint) == expect.requests, armed.server.counts()
    for server, endpoint in armed.injected:
        assert server.pending_faults(endpoint) == 0, f"{endpoint}: the fault was never hit"
    if fault.id == "s429_retry_after":
        assert elapsed >= 1.0, "Retry-After was not honoured"
    if fault.id == "credentials_in_url":
        assert URL_PASSWORD not in seen, "a URL's password reached the error message"
        assert all("authorization" not in headers for headers in armed.server.request_headers)
    assert_files_intact(world)

    armed.disarm()
    remembered = let_failures_expire(world.cache_dir)  # the fault is gone, and its remembered time
    if expect.outcome.exit_code == 0:
        assert remembered == [], "a success remembers no failure"
    with library_source(world) as source:  # the next run, in-process to save a process start
        assert source.token()
    assert_files_intact(world)
