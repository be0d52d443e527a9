"""Building blocks. Importing the package registers every tokenizer and attention variant by name."""
from . import lsa, spt  # noqa: F401  (register "lsa" in ATTENTIONS and "spt" in TOKENIZERS)
