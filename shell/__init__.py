"""stacktoken's imperative shell: files, HTTP, discovery, clock, logging, CLI."""

__all__: list[str] = []
