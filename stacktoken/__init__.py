"""stacktoken: stack API tokens for Formance-style stacks, kept warm on disk."""

__all__: list[str] = []
