"""stacktoken's imperative shell: files, HTTP, discovery, clock, logging, the facade, the CLI.

The surface of this package is its modules; the public names are re-exported
by `stacktoken` itself (api/__init__.py). Importing this package imports
nothing else.
"""
