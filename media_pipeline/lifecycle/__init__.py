"""Soft delete, restore, force delete, auto soft-delete and purge."""
