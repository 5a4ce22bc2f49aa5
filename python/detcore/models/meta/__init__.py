"""meta of the detectors."""
