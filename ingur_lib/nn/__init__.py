"""Building blocks. Importing the package registers every tokenizer and attention variant by name."""
from . import lsa, spt, talking_heads  # noqa: F401  (register "lsa", "talking_heads"; "spt" in TOKENIZERS)
