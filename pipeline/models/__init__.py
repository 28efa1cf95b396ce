"""Model builders: real architectures from their libraries, from local weights or at
toy size with seeded random weights (the ``tiny`` preset)."""
