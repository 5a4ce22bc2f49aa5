"""roi_heads of the detectors."""
