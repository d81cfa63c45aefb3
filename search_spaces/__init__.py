"""Declarative search spaces over the op library, and the `Arch` value they produce."""
from . import segmentation  # noqa: F401  (registers SegNet for dense-prediction archs)
from .arch import Arch, Classifier, Decoder, Layer
from .builder import build_model
from .loader import load, shipped_spaces
from .schema import SpaceError
from .space import Decision, Position, SearchSpace

__all__ = ["Arch", "Classifier", "Decision", "Decoder", "Layer", "Position", "SearchSpace", "SpaceError",
           "build_model", "load", "shipped_spaces"]
