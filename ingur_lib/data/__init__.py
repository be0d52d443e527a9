"""The data layer: image and text datasets through 🤗 datasets, cached, with offline sources first."""
from .augment import Augment, image_prepare
from .images import DATASETS, ImageData, load_images
from .text import LMData, Vocab, lm_data, load_corpus, number_pairs

__all__ = ["Augment", "DATASETS", "ImageData", "LMData", "Vocab", "image_prepare", "lm_data", "load_corpus",
           "load_images", "number_pairs"]
