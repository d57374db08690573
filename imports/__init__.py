"""imports app."""
