"""connectors app."""
