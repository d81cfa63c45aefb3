"""convnas: hardware-aware neural architecture search over convolution ops."""
__version__ = "0.1.0"
