"""The client-credentials grant (docs/design.md §9, RFC 6749 §4.4) over generated timelines."""

from __future__ import annotations

import base64
from urllib.parse import unquote

from fakes import CLIENT, FakeWorld
from hypothesis import event, given, note
from returns.result import Failure, Success
from stacktoken.core._errors import AuthRequired, OAuthError
from stacktoken.core._requests import CLIENT_CREDENTIALS_GRANT
from stacktoken.core._types import DiscoveryDocument, TokenRequest
from strategies import Scenario, client_runs


def _document_before(world: FakeWorld, index: int) -> DiscoveryDocument:
    """The discovery document the request at `index` was built from: the last one found."""
    for call in reversed(world.calls[:index]):
        if call.effect == "discover_stack" and isinstance(call.answer, Success):
            document = call.answer.unwrap()
            assert isinstance(document, DiscoveryDocument)
            return document
    raise AssertionError("a token request without a discovered endpoint")


@given(client_runs())
def test_client_authenticates_as_the_discovery_document_offers(scenario: Scenario) -> None:
    """Basic when the stack lists `client_secret_basic` or lists nothing (RFC 8414 §2's
    default), else the form; the credentials are exactly the client's, and only one way."""
    world = FakeWorld(scenario)
    world.acquire()
    for index, call in enumerate(world.calls):
        if call.effect != "client_token":
            continue
        request = call.argument
        assert isinstance(request, TokenRequest)
        form = dict(request.form)
        headers = dict(request.headers)
        methods = _document_before(world, index).auth_methods
        assert form["grant_type"] == CLIENT_CREDENTIALS_GRANT
        assert form["scope"] == " ".join(sorted(CLIENT.scopes))
        if methods is None or "client_secret_basic" in methods:
            event("client_secret_basic")
            user, _, password = (
                base64.b64decode(headers["Authorization"][6:]).decode().partition(":")
            )
            assert headers["Authorization"].startswith("Basic ")
            assert (unquote(user), unquote(password)) == (CLIENT.client_id, CLIENT.client_secret)
            assert "client_secret" not in form
        else:
            event("client_secret_post")
            assert (form["client_id"], form["client_secret"]) == (
                CLIENT.client_id,
                CLIENT.client_secret,
            )
            assert "Authorization" not in headers
        assert CLIENT.client_secret in request.secrets  # redacted should the server echo it


@given(client_runs())
def test_rejected_client_means_authentication_required_and_no_retry(scenario: Scenario) -> None:
    """`invalid_client` / `unauthorized_client` end the acquisition with AuthRequired, at once."""
    world = FakeWorld(scenario)
    result = world.acquire()
    requests = world.called("client_token")
    note(f"calls: {world.names()}")
    for position, call in enumerate(requests):
        answer = call.answer
        failure = answer.failure() if isinstance(answer, Failure) else None
        if isinstance(failure, OAuthError) and failure.error in (
            "invalid_client",
            "unauthorized_client",
        ):
            event("client rejected")
            assert position == len(requests) - 1
            assert isinstance(result, Failure)
            assert isinstance(result.failure(), AuthRequired)
            assert "client credentials" in result.failure().message


@given(client_runs())
def test_client_token_endpoint_rediscovered_once_after_it_is_gone(scenario: Scenario) -> None:
    """A forced stack discovery only follows a token request answered "gone", at most once."""
    world = FakeWorld(scenario)
    world.acquire()
    forced = [call for call in world.called("discover_stack") if call.argument]
    assert len(forced) <= 1
    requests = world.called("client_token")
    assert len(requests) <= 2
    if forced:
        event("rediscovered")
        index = world.calls.index(forced[0])
        previous = world.calls[index - 1]
        assert previous.effect == "client_token"
        assert isinstance(previous.answer, Failure) and previous.answer.failure().endpoint_gone


@given(client_runs())
def test_client_grant_never_touches_fctl_files(scenario: Scenario) -> None:
    """A machine credential has no accesses.json and no membership IdP."""
    world = FakeWorld(scenario)
    world.acquire()
    assert {"read_access", "write_access", "discover_membership", "refresh", "exchange"}.isdisjoint(
        world.names()
    )
