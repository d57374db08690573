"""Shared fixtures: real Redis, PostgreSQL and Celery workers."""
