"""The data layer: image and text datasets through Hugging Face datasets, cached, with offline sources first."""
import torch

from .augment import Augment, image_prepare, prepared
from .images import DATASETS, ImageData, load_images, load_subset
from .text import LMData, Vocab, lm_data, load_corpus, number_pairs

__all__ = ["Augment", "DATASETS", "ImageData", "LMData", "Vocab", "example_images", "image_prepare", "lm_data",
           "load_corpus", "load_images", "load_subset", "prepared", "number_pairs"]


def example_images(data: ImageData, per_class: int = 1, classes=range(8)) -> tuple[torch.Tensor, torch.Tensor]:
    """The first test image of each of the given classes (`ImageData.examples`)."""
    return data.examples(per_class, classes)
