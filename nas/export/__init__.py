"""Export: an architecture (+ weights) as one readable PyTorch file, ONNX, and a search run's chosen trial."""
from nas.export import segmentation  # noqa: E402,F401  (registers the segmentation writer)
