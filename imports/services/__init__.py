"""Services: the only code that changes runs."""
