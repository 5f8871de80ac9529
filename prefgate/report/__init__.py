"""``prefgate report``: the governance tables of the Dagster asset pages, printed in the terminal.

``tables`` reads the warehouse and builds the rater, judge and preference-set frames, ``gates`` recomputes
the blocking gates from the warehouse as the checks do, ``text`` lays out aligned plain-text tables, and
``command`` is the ``prefgate report raters|judges|gates|set`` subcommand (text, or ``--json`` documented by
``prefgate/report/schemas/``).
"""

from __future__ import annotations
