"""Declarative search spaces over the op library, and the `Arch` value they produce."""
from .arch import Arch, Classifier, Decoder, Layer
from .builder import build_model

__all__ = ["Arch", "Classifier", "Decoder", "Layer", "build_model"]
