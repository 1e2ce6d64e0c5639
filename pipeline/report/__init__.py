"""The corpus datasheet (``datasheet``): what happened to the data, stage by stage, as one HTML
page. ``python -m pipeline.report --corpus DIR``."""
