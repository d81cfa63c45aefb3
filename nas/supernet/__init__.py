"""Weight-sharing supernets: the tensor store, the classification and dense-prediction supernets, path samplers."""
from nas.supernet.segmentation import SegSupernet
from nas.supernet.supernet import Supernet, SupernetError

__all__ = ["SegSupernet", "Supernet", "SupernetError"]
