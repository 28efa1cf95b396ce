"""Trainers that read only the feature cache: RSA (images) and SCMA (videos)."""
