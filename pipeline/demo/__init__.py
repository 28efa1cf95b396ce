"""Synthetic demo datasets that qfeat generates itself (no downloads)."""
