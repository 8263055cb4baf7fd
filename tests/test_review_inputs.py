"""Hostile inputs found in review: each must give a one-line error or a cache miss,
never an untyped exception, a hang, a leak or a stray file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from oauth_servers import Fault, MembershipServer, StackAuthServer, write_fctl_profile
from returns.result import Failure, Success
from stacktoken import InvalidUsageError, RemoteServerError, TokenSource
from stacktoken.core._cache import judge_disk_entry
from stacktoken.core._cache_codec import decode_cache_entry
from stacktoken.core._codecs import decode_accesses, decode_token_response
from stacktoken.core._profile import resolve_organization, resolve_stack
from stacktoken.core._requests import exchange_request, interpret_token_response
from stacktoken.core._types import CachedToken, Settings
from stacktoken.shell import _cli, _files

from conftest import World

ERROR_PREFIX = "stacktoken: error: "


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(ERROR_PREFIX), lines[0]
    assert "unexpected" not in lines[0], lines[0]
    return lines[0]


def snapshot(root: Path) -> set[str]:
    return {
        str(Path(folder, name).relative_to(root))
        for folder, folders, files in os.walk(root)
        for name in folders + files
    }


# -- tokens that are not RFC 6749 VSCHAR --------------------------------------------

NOT_TOKENS = {
    "lone-surrogate": "\ud800abc",
    "newline": "abc\ndef",
    "non-ascii": "tok\u00e9",
    "nul": "tok\x00",
}


@pytest.mark.parametrize("token", NOT_TOKENS.values(), ids=NOT_TOKENS.keys())
def test_token_issued_token_outside_vschar_is_refused_and_not_cached(
    world: World, token: str
) -> None:
    """RFC 6749 Appendix A.12: access_token is 1*VSCHAR. Anything else cannot be
    printed on one line nor sent in a header: a protocol failure, never cached."""
    world.stack.inject(world.stack.TOKEN, Fault.override_fields(access_token=token))
    assert_one_line_error(world.run("token"), 1)
    assert not world.profile.api_token_cache_path.exists()
    assert world.run("token").returncode == 0  # the next, well-behaved answer is used


@pytest.mark.parametrize("token", NOT_TOKENS.values(), ids=NOT_TOKENS.keys())
def test_decode_cache_entry_token_outside_vschar_is_a_miss(token: str) -> None:
    data = json.dumps({"accessToken": token, "expiry": "2999-01-01T00:00:00Z"}).encode()
    result = decode_cache_entry(data)
    assert isinstance(result, str), result
    assert token not in result


@pytest.mark.parametrize("token", NOT_TOKENS.values(), ids=NOT_TOKENS.keys())
def test_decode_token_response_token_outside_vschar_is_refused(token: str) -> None:
    body = json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 60})
    result = decode_token_response(body.encode(), sent_at=datetime.now(UTC))
    assert isinstance(result, Failure), result


@pytest.mark.parametrize("field", ["token", "refreshToken"])
def test_decode_accesses_secret_outside_vschar_is_refused(field: str) -> None:
    document = {"token": "eyJ.a.b", "claims": {"exp": 1}, "refreshToken": "r"}
    document[field] = "x\ud800"
    assert isinstance(decode_accesses(json.dumps(document).encode()), Failure)


def test_token_stack_access_token_outside_vschar_asks_for_login(world: World) -> None:
    path = world.profile.accesses_path
    document = json.loads(path.read_text())
    document["token"] += "\ud800"
    path.write_text(json.dumps(document))
    line = assert_one_line_error(world.run("token"), 3)
    assert "stacktoken login" in line


# -- URLs that httpx refuses ---------------------------------------------------------

BAD_ENDPOINTS = {
    "nul": "https://example.com/to\x00ken",
    "empty-label": "https://a..b/token",
    "bad-punycode": "https://xn--a.com/token",
    "surrogate-host": "https://\u00ff\ud800.com/token",
}


@pytest.mark.parametrize("endpoint", BAD_ENDPOINTS.values(), ids=BAD_ENDPOINTS.keys())
def test_token_endpoint_httpx_cannot_send_to_is_a_remote_error(world: World, endpoint: str) -> None:
    for _ in range(2):  # the discovery is redone after the unusable endpoint
        world.stack.inject(world.stack.DISCOVERY, Fault.override_fields(token_endpoint=endpoint))
    assert_one_line_error(world.run("token"), 1)


@pytest.mark.parametrize("endpoint", BAD_ENDPOINTS.values(), ids=BAD_ENDPOINTS.keys())
def test_source_endpoint_httpx_cannot_send_to_raises_typed_error(
    world: World, endpoint: str
) -> None:
    for _ in range(2):
        world.stack.inject(world.stack.DISCOVERY, Fault.override_fields(token_endpoint=endpoint))
    with (
        TokenSource.from_fctl(
            config_dir=world.config_dir, cache_dir=world.cache_dir, environ={}
        ) as source,
        pytest.raises(RemoteServerError),
    ):
        source.token()


# -- file times out of datetime's range ------------------------------------------------


@pytest.mark.parametrize("mtime", [1e12, -1e12])
def test_read_private_mtime_out_of_range_is_no_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mtime: float
) -> None:
    """tmpfs and others store mtimes past year 9999 (`touch -d @1e12`)."""
    path = tmp_path / "api_token_cache.json"
    path.write_bytes(b"{}")
    path.chmod(0o600)
    real_fstat = os.fstat

    def fstat(descriptor: int) -> object:
        info = real_fstat(descriptor)
        return SimpleNamespace(
            st_mode=info.st_mode, st_uid=info.st_uid, st_size=info.st_size, st_mtime=mtime
        )

    monkeypatch.setattr(os, "fstat", fstat)
    found = _files.read_private(str(path))  # must not raise
    assert not isinstance(found, str), found
    data, moment = found
    assert data == b"{}"
    # fctl's entry (no savedAt) counts as saved at that time: never usable, no exception.
    entry = CachedToken(
        access_token="t", token_type="Bearer", expiry=datetime.max.replace(tzinfo=UTC)
    )
    verdict = judge_disk_entry(entry, file_mtime=moment, settings=Settings(), now=datetime.now(UTC))
    assert not verdict.usable


# -- folders -------------------------------------------------------------------------


@pytest.mark.parametrize("as_place", [True, False], ids=["place", "path"])
def test_write_atomic_creates_missing_parents_private(tmp_path: Path, as_place: bool) -> None:
    """docs/design.md §3.5: folders 0700, the parents it makes included (as segments
    below a root, or as the folders of a bare path)."""
    parts = ("a", "b", "c", "file.json")
    place = (
        _files.Place(root=str(tmp_path), parts=parts)
        if as_place
        else str(tmp_path.joinpath(*parts))
    )
    old = os.umask(0o022)
    try:
        written = _files.write_atomic(place, b"{}")
    finally:
        os.umask(old)
    assert written == Success(None)
    assert tmp_path.joinpath(*parts).read_bytes() == b"{}"
    for folder in ("a", "a/b", "a/b/c"):
        assert stat.S_IMODE((tmp_path / folder).stat().st_mode) == 0o700, folder


@pytest.mark.parametrize(
    "args", [("--stack", "typo"), ("--organization", "typo")], ids=["stack", "organization"]
)
def test_token_unknown_stack_leaves_no_folder_or_lock(world: World, args: tuple[str, str]) -> None:
    before = snapshot(world.config_dir)
    result = world.run("token", *args)
    assert result.returncode in (2, 3), result.stderr
    assert snapshot(world.config_dir) == before


# -- the CLI's last resort --------------------------------------------------------------


def test_cli_unexpected_error_text_is_not_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unexpected exception's text may hold anything, a token included."""
    secret = "SECRET-token-0123456789abcdef"

    def explode(_: object) -> int:
        raise ValueError(f"could not handle {secret}")

    monkeypatch.setattr(_cli, "_run", explode)
    assert _cli.main(["token"]) == 1
    captured = capsys.readouterr()
    assert secret not in captured.err
    assert captured.err.startswith(ERROR_PREFIX)
    assert len(captured.err.splitlines()) == 1


# -- cache list over odd folder names -------------------------------------------------------


def test_cache_list_odd_folder_names_stay_one_line_each(world: World) -> None:
    entry = {"accessToken": "st_x", "tokenType": "Bearer", "expiry": "2999-01-01T00:00:00Z"}
    profiles = os.fsencode(world.config_dir / "profiles")
    for organization in (b"a\nb", b"\xff"):
        folder = os.path.join(profiles, b"default", b"organizations", organization, b"stacks", b"s")
        os.makedirs(folder, mode=0o700)
        path = os.path.join(folder, b"api_token_cache.json")
        with open(path, "w") as handle:
            json.dump(entry, handle)
        os.chmod(path, 0o600)
    result = world.run("cache", "list", env={"PYTHONIOENCODING": "utf-8:strict"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert all(line.startswith("default/") and line.isprintable() for line in lines), lines


# -- empty names (docs/design.md §3.6) ---------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("token", "--stack", ""),
        ("token", "--organization", ""),
        ("token", "--stack="),
    ],
)
def test_token_empty_name_is_usage_error(world: World, argv: tuple[str, ...]) -> None:
    """`--stack "$STACK"` with STACK unset must not quietly give the default stack's token."""
    assert world.run("token").returncode == 0  # warm: the warm path must decline too
    line = assert_one_line_error(world.run(*argv), 2)
    assert "empty" in line


def test_token_empty_profile_is_usage_error(world: World) -> None:
    result = world.run("token", global_args=("--cache-dir", str(world.cache_dir), "--profile", ""))
    assert "empty" in assert_one_line_error(result, 2)


def test_resolve_empty_flag_is_kept_for_validation() -> None:
    from stacktoken.core._profile import Organization, Profile

    profile = Profile(
        name="p",
        membership_uri=None,
        logged_in=True,
        organizations=(Organization(id="a", stacks=()),),
        default_organization="a",
        default_stack="s",
    )
    assert resolve_organization(profile, "") == ""
    assert resolve_stack(profile, "a", "") == ""


# -- library TTLs ----------------------------------------------------------------------


def test_source_negative_ttl_is_usage_error(world: World) -> None:
    with pytest.raises(InvalidUsageError):
        TokenSource.from_fctl(
            config_dir=world.config_dir, cache_ttl=timedelta(seconds=-5), environ={}
        )


# -- fctl's files that are not files --------------------------------------------------------


def test_read_plain_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "profile.json"
    os.mkfifo(fifo)
    found: list[object] = []
    reader = threading.Thread(
        target=lambda: found.append(_files.read_plain(str(fifo))), daemon=True
    )
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("read_plain blocked on a FIFO")
    assert found == [None]


def test_cli_profile_fifo_is_not_a_hang(world: World) -> None:
    world.profile.profile_path.unlink()
    os.mkfifo(world.profile.profile_path)
    result = subprocess.run(
        [sys.executable, "-m", "stacktoken", "token"],
        capture_output=True,
        text=True,
        env=world.env(),
        timeout=30,
        check=False,
    )
    # Since profile.json gets the token files' trust checks: a FIFO
    # is refused as not a regular file (LocalError, exit 1), not read as a
    # missing profile (exit 3).
    line = assert_one_line_error(result, 1)
    assert "profile.json" in line and "not a regular file" in line, line


# -- servers that echo what they were sent ------------------------------------------------


def test_token_error_description_echoing_the_refresh_token_is_redacted(tmp_path: Path) -> None:
    """A server may quote the request in `error_description`; the quote must not leak."""
    with MembershipServer() as membership, StackAuthServer(membership) as stack:
        profile = write_fctl_profile(tmp_path / "fctl", membership, stack, stack_access_exp_in=-60)
        world = World.at(tmp_path, membership, stack, profile)
        refresh = profile.stack_refresh_token
        membership.inject(
            membership.TOKEN,
            Fault.status(400, "unauthorized_client", f"refresh token {refresh} is not for you"),
        )
        line = assert_one_line_error(world.run("token"), 1)
        assert refresh not in line
        assert "unauthorized_client" in line


def test_interpret_token_response_redacts_the_secrets_it_was_sent() -> None:
    assertion = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    request = exchange_request("https://stack.example/token", assertion)
    body = json.dumps({"error": "invalid_scope", "error_description": f"{assertion} no"})
    result = interpret_token_response(
        400, body.encode(), request=request, sent_at=datetime.now(UTC)
    )
    assert isinstance(result, Failure)
    assert assertion not in result.failure().message
    assert "no" in result.failure().message
