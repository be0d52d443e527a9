"""The data layer: image and text datasets through 🤗 datasets, cached, with offline sources first."""
from .augment import Augment, image_prepare
from .images import DATASETS, ImageData, load_images
from .text import Vocab, load_corpus, number_pairs

__all__ = ["Augment", "DATASETS", "ImageData", "Vocab", "image_prepare", "load_corpus", "load_images", "number_pairs"]
