"""OIDC discovery, with documents kept on disk for as long as `Cache-Control` allows.

Documents are cached under the user cache dir (platformdirs' for
"stacktoken", or `--cache-dir`), one file per discovery URL, named by its
hash (DESIGN §3.4). A cached document is used until its end of life; the
workflow asks for a fresh one (`refresh=True`) when the token endpoint it
named turns out to be gone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path

from returns.result import Result, Success
from stacktoken.core import (
    DiscoveryDocument,
    DiscoveryTarget,
    RemoteError,
    check_endpoint_url,
    decode_discovery_cache,
    discovery_cache_name,
    discovery_max_age,
    encode_discovery_cache,
    interpret_discovery,
)

from ._files import read_private, remove_file, write_atomic
from ._http import Http, HttpAnswer

__all__ = ["DiscoveryCache", "discover", "default_cache_dir"]


def default_cache_dir() -> Path:
    """platformdirs' user cache dir for stacktoken."""
    import platformdirs  # cold path only

    return platformdirs.user_cache_path("stacktoken")


class DiscoveryCache:
    """Discovery documents on disk, keyed by a hash of their URL."""

    def __init__(self, root: Callable[[], Path], *, log: Callable[[str], None]) -> None:
        self._root = root
        self._log = log

    @cached_property
    def folder(self) -> Path:
        return self._root() / "discovery"

    def load(self, url: str, *, now: datetime) -> DiscoveryDocument | None:
        read = read_private(self.folder / discovery_cache_name(url)).bind(
            lambda found: decode_discovery_cache(found[0])
        )
        match read.value_or(None):
            case (document, expires_at) if now < expires_at and isinstance(
                check_endpoint_url(document.token_endpoint), Success
            ):
                self._log("discovery cache hit")
                return document
        self._log("discovery cache miss")
        return None

    def store(self, url: str, document: DiscoveryDocument, *, expires_at: datetime) -> None:
        written = write_atomic(
            self.folder / discovery_cache_name(url),
            encode_discovery_cache(document, expires_at=expires_at),
        )
        written.alt(lambda error: self._log(f"discovery cache write failed: {error.message}"))

    def drop(self, url: str) -> None:
        remove_file(self.folder / discovery_cache_name(url))


def discover(
    target: DiscoveryTarget,
    *,
    http: Http,
    cache: DiscoveryCache | None,
    clock: Callable[[], datetime],
    refresh: bool = False,
) -> Result[DiscoveryDocument, RemoteError]:
    """The discovery document for `target`: from the cache when fresh, else fetched."""
    if cache is not None:
        if refresh:
            cache.drop(target.url)
        elif (cached := cache.load(target.url, now=clock())) is not None:
            return Success(cached)

    def keep(answer: HttpAnswer, document: DiscoveryDocument) -> DiscoveryDocument:
        max_age = discovery_max_age(answer.cache_control)
        if cache is not None and max_age > timedelta(0):
            cache.store(target.url, document, expires_at=answer.sent_at + max_age)
        return document

    return http.get(target.url).bind(
        lambda answer: interpret_discovery(answer.status_code, answer.body, target=target).map(
            lambda document: keep(answer, document)
        )
    )
