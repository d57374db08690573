"""Template tags of the importhub admin."""
