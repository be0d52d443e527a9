"""The ledger: what each paper reports beside what we reproduced, with a verdict and a reason.

Four modules, one job each; this one gathers their public names so that a chapter writes
`ledger.summarize`, `ledger.compare`, `ledger.record`, `ledger.chapter_markdown`:

* `stats`: summaries over seeds, paired differences, the 95% interval, and the book's one standard of
  evidence (`resolved`), with the convergence rule and the words pages use for an effect;
* `verdicts`: the papers' claims (`data/reported/<paper>.yaml`, validated on read) and the verdict on
  each, judged from our numbers by one rule per claim form (`judge`, `compare`);
* `results`: the results store (`data/results/<chapter>/<profile>.json`: provenance and numbers, never a
  verdict), written atomically by `record`, validated by `load_results`;
* `publish`: the ledger as tables and pages (a chapter's rows, the book's ledger page, LaTeX), every
  verdict judged when it is drawn.
"""
from __future__ import annotations

from .publish import (BADGES, RULE_TEXT, book_page, chapter_markdown, provenance_lines, table,  # noqa: F401
                      to_latex, to_markdown, write_book_page)
from .results import (PROVENANCE_KEYS, all_results, load_results, record, results_path,  # noqa: F401
                      validate_results)
from .stats import (NOISY_CHECK, NULL_WORDS, RESOLVED_WORDS, best_rate, bracketed, convergence,  # noqa: F401
                    direction, effect_text, interval, mean_se, paired, resolved, se, seeds_to_decide,
                    smallest_effect, summarize, t975)
from .verdicts import (COST_UNITS, DEFAULT_TOLERANCE, FORMS, INCONCLUSIVE, NOT_REPRODUCED,  # noqa: F401
                       NOT_RUN, NOT_TESTABLE, PARTLY, REPRODUCED, SIZE_BANDS, VERDICTS, all_reported,
                       claim, compare, judge, judge_row, load_reported, size_band, tolerance,
                       validate_reported)
