"""qfeat pipeline: dataset adapters, presets and (later) the feature stages."""
