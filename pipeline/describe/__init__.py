"""The describe stage's parts: prompt and region view (``prompt``), answer parser (``parse``)."""
