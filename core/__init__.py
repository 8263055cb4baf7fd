"""stacktoken's functional core: every decision, format and message, pure.

Nothing here reads a file, the clock, the environment or the network; time
comes in as `now`, effects as callables returning `returns` Results. The
surface of this package is its modules: import a name from the module that
defines it (`from stacktoken.core._paths import stack_paths`).

The warm set (docs/design.md, "The warm set"): the core modules a warm
`stacktoken token` run imports. Only they are written for import cost: no
`typing`, `dataclasses`, `enum`, `re`, `json` or `returns` at import time,
plain value-or-None returns, `Record` instead of dataclasses. Every other
module is written the ordinary way. tests/test_warm_path_imports.py guards
the list.
"""
