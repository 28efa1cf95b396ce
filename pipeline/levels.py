"""The five-level quality scale and the rated distortion dimensions, defined once.

The describe stage asks for one level word per dimension (and stores 1..5), the text
stage embeds them, the RSA head embeds the ratings (0 = unknown, 1..5), and Q-CLIP's
prompts read "a video of {level} quality"."""

from __future__ import annotations

LEVELS = ("bad", "poor", "fair", "good", "excellent")  # 1..5, worst first
DIMENSIONS = ("colour", "noise", "artifact", "blur", "overall")  # "artifact": compression

__all__ = ["DIMENSIONS", "LEVELS"]
