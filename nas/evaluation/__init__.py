"""Evaluation of a network or a supernet path: BN recalibration, classification and segmentation metrics."""
