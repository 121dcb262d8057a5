"""Static analysis: file discovery, per-language metrics, lint, caching and aggregation."""
