"""backbones of the detectors."""
