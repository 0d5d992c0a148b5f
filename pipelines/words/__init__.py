"""Splitting and counting words."""
