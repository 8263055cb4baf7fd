"""OIDC discovery, with documents kept on disk for as long as `Cache-Control` allows.

Documents are cached under the user cache dir (platformdirs' for
"stacktoken", or `--cache-dir`), one file per discovery URL, named by its
hash (docs/design.md §3.4). A cached document is used until its end of life; the
workflow asks for a fresh one (`refresh=True`) when the token endpoint it
named turns out to be gone.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

from returns.result import Result, Success
from stacktoken.core._codecs import decode_discovery_cache, encode_discovery_cache
from stacktoken.core._errors import RemoteError
from stacktoken.core._paths import discovery_cache_name
from stacktoken.core._requests import DiscoveryTarget, discovery_max_age, interpret_discovery
from stacktoken.core._time import datetime, timedelta
from stacktoken.core._types import DiscoveryDocument
from stacktoken.core._urls import check_endpoint_url

from ._files import Place, read_private, remove_file, write_atomic
from ._http import Http, HttpAnswer

__all__ = ["DiscoveryCache", "discover"]


class DiscoveryCache:
    """Discovery documents on disk, keyed by a hash of their URL."""

    def __init__(self, root: Callable[[], str], *, log: Callable[[str], None]) -> None:
        self._root = root
        self._log = log

    @cached_property
    def root(self) -> str:
        return self._root()

    def _path(self, url: str) -> Place:
        return Place(root=self.root, parts=("discovery", discovery_cache_name(url)))

    def load(self, url: str, *, now: datetime) -> DiscoveryDocument | None:
        read = read_private(self._path(url))
        decoded = decode_discovery_cache(read[0]) if not isinstance(read, str) else None
        match decoded.value_or(None) if decoded is not None else None:
            case (document, expires_at) if now < expires_at and isinstance(
                check_endpoint_url(document.token_endpoint), Success
            ):
                self._log("discovery cache hit")
                return document
        self._log("discovery cache miss")
        return None

    def store(self, url: str, document: DiscoveryDocument, *, expires_at: datetime) -> None:
        written = write_atomic(
            self._path(url), encode_discovery_cache(document, expires_at=expires_at)
        )
        written.alt(lambda error: self._log(f"discovery cache write failed: {error.message}"))

    def drop(self, url: str) -> None:
        remove_file(self._path(url))


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
