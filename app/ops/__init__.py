"""Running it: health and readiness, request ids and JSON logs, Prometheus metrics, security headers,
rate limits keyed by user and device."""
