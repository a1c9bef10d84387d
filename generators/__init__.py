"""Conditional generators."""
