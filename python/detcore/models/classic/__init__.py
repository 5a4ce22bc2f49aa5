"""The line's first detectors: R-CNN and SPP-net (region classifiers with
SVM and box-regression stages)."""
