"""proposal of the detectors."""
