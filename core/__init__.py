"""stacktoken's functional core: every decision, format and message, pure.

Nothing here reads a file, the clock, the environment or the network; time
comes in as `now`, effects as callables returning `returns` Results. The
surface of this package is its modules: import a name from the module that
defines it (`from stacktoken.core._paths import stack_paths`).

The warm set (docs/design.md §12) is the modules a warm `stacktoken token`
run imports; only they are written for import cost (no `typing`,
`dataclasses`, `enum`, `re`, `json` or `returns` at import time; plain
value-or-None returns; `Record` instead of dataclasses; no `from __future__
import annotations`, which imports the `__future__` module: an annotation is
quoted when it names what only type checkers import, or is compound, as
`str | None` or `tuple[str, ...]`, which would be built at definition time).
Every other module is
written the ordinary way. tests/test_warm_path_imports.py holds a warm run to
this list and each listed module to those rules:

    core: _cache _cache_codec _chain _commands _errors _json _paths
          _profile _record _text _time _types _urls
    shell: _config _files _lock _stores _warm
"""
