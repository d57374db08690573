"""The HTTP API: start imports and follow their runs, for other services."""
