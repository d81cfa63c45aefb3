"""Export: an architecture (+ weights) as one readable PyTorch file, ONNX, and a search run's chosen trial."""
