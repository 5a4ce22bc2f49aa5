"""``detcore reproduce``: the experiments of the line's papers, re-run.

Each experiment lives in ``experiments/<name>.py`` as a subclass of
:class:`~detcore.engine.reproduce.base.Experiment` registered with
:func:`~detcore.engine.reproduce.base.register`. It states the published numbers
and their setting, plans its runs for a preset (``quick``, ``small``, ``paper``),
runs them through the same ``detcore train`` / ``detcore eval`` code a user runs,
and returns rows of published-beside-measured numbers; :mod:`.report` writes
``results.md``, ``results.json`` and the summary ``REPRODUCTION.md``.
"""

from .base import ORDER, PRESETS, Experiment, Outcome, ReproduceError, Row, available, get, register

__all__ = ["ORDER", "PRESETS", "Experiment", "Outcome", "ReproduceError", "Row", "available", "get", "register"]
