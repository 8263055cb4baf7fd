"""The credential chain (docs/design.md §14): every environment gets one answer, and
half a machine credential never falls through to the profile."""

from __future__ import annotations

from hypothesis import event, given
from hypothesis import strategies as st
from stacktoken.core._chain import Credential, chained_options, choose_credential
from stacktoken.core._errors import AuthRequired, UsageError
from strategies import chain_environments


def _set(environ: dict[str, str], name: str) -> bool:
    return bool(environ.get(name))


@given(environ=chain_environments(), explicit_client=st.booleans(), explicit_fctl=st.booleans())
def test_choose_credential_answers_every_environment(
    environ: dict[str, str], explicit_client: bool, explicit_fctl: bool
) -> None:
    """A credential, a usage error or "nothing found": never an exception."""
    chosen = choose_credential(
        explicit_client=explicit_client, explicit_fctl=explicit_fctl, environ=environ
    )
    event(type(chosen).__name__)
    assert isinstance(chosen, Credential | UsageError | AuthRequired)
    if isinstance(chosen, Credential):
        assert chosen.kind in ("client", "fctl")
        said = " ".join((chosen.why, *chosen.tried))
        # Only variable names are quoted, never a distinctive value (the pin's is on purpose).
        for name, value in environ.items():
            if len(value) > 3 and name != "STACKTOKEN_CREDENTIAL":
                assert value not in said


@given(environ=chain_environments())
def test_choose_credential_half_a_machine_credential_never_reaches_the_profile(
    environ: dict[str, str],
) -> None:
    """Unpinned and without arguments: a stack URI or client id without the rest is a
    usage error; the secret alone is no credential at all."""
    chosen = choose_credential(explicit_client=False, explicit_fctl=False, environ=environ)
    if environ.get("STACKTOKEN_CREDENTIAL"):
        return  # pinned: the pin's own rules
    uri, client = _set(environ, "STACKTOKEN_STACK_URI"), _set(environ, "STACKTOKEN_CLIENT_ID")
    secret = _set(environ, "STACKTOKEN_CLIENT_SECRET") or _set(
        environ, "STACKTOKEN_CLIENT_SECRET_FILE"
    )
    if uri and client and secret:
        assert isinstance(chosen, Credential) and chosen.kind == "client"
    elif uri or client:
        assert isinstance(chosen, UsageError)
    else:
        assert isinstance(chosen, Credential) and chosen.kind == "fctl"


@given(environ=chain_environments(), flags=st.sampled_from([{}, {"profile": "p"}, {"stack": "s"}]))
def test_chained_options_agrees_with_choose_credential(
    environ: dict[str, str], flags: dict[str, str]
) -> None:
    """The warm path declines exactly when the chain refuses, and serves a client
    credential exactly when the chain picks one."""
    chosen = choose_credential(explicit_client=False, explicit_fctl=bool(flags), environ=environ)
    chained = chained_options(dict(flags), environ)
    if not isinstance(chosen, Credential):
        assert chained is None
    elif chosen.kind == "client":
        assert chained is not None and chained["client_id"] == chosen.client_id
    else:
        assert chained == flags
