"""Keep the FAQ index in step with the FAQ tables in MySQL (docs/sync.md)."""
