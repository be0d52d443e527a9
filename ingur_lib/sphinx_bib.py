"""Sphinx extension (listed in `_config.yml`): one citation style, author-year, in the text and in the list.

The pages cite author-year (`bibtex_reference_style: author_year`: "Touvron et al. 2021"), while the
reference list used pybtex's default alpha labels ("[TCS+21]"): a reader could not match one to the other.
This registers a pybtex style whose labels are the author-year text, and makes it the default
(`bibtex_default_style`), so the list reads "[Touvron et al., 2021]" beside the entry the text cited.
"""
from __future__ import annotations

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as Unsrt
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting.author_year_title import SortingStyle

STYLE = "ingur_authoryear"


def _surname(person) -> str:
    return " ".join(person.prelast_names + person.last_names).replace("{", "").replace("}", "")


def author_year(entry) -> str:
    """ "Vaswani et al., 2017", "Liu and Lam, 2021", "Xiao et al., 2017": how the text cites the entry."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in people]
    who = (names[0] if len(names) == 1 else " and ".join(names) if len(names) == 2
           else f"{names[0]} et al." if names else entry.fields.get("title", entry.key)[:20])
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        seen: dict[str, int] = {}
        for entry in sorted_entries:
            label = author_year(entry)
            seen[label] = seen.get(label, 0) + 1
            # two papers of one first author in one year: 2021a, 2021b (as the text would need them)
            yield label if seen[label] == 1 else f"{label}{chr(ord('a') + seen[label] - 1)}"


class AuthorYearStyle(Unsrt):
    default_label_style = AuthorYearLabels
    default_sorting_style = SortingStyle


def setup(app):
    register_plugin("pybtex.style.labels", STYLE, AuthorYearLabels, force=True)
    register_plugin("pybtex.style.formatting", STYLE, AuthorYearStyle, force=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
