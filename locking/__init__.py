"""Redis locks, semaphores and lease renewal, with no Django imports."""
