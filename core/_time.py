"""The `datetime` types, loaded the cheap way.

`datetime.py` defines every class in pure Python and then replaces them all
with the C implementation's (`from _datetime import *`): a warm run paid for
the pure-Python half for nothing (2.8 ms of a 16 ms interpreter start, here).
Importing `_datetime` gives the very same classes (`_datetime.datetime is
datetime.datetime`) without it; an implementation without `_datetime` loads
`datetime`.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import UTC, datetime, timedelta, timezone
else:
    try:
        from _datetime import datetime, timedelta, timezone
    except ImportError:  # pragma: no cover - CPython has _datetime
        from datetime import datetime, timedelta, timezone
    UTC = timezone.utc  # noqa: UP017 - datetime.UTC is what this avoids importing

__all__ = ["UTC", "datetime", "timedelta", "timezone"]
