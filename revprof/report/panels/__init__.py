"""The data of each report figure, one module per panel, as plain typed values (no plotly).

``pareto`` (the front), ``reference`` (the network the memory panels are about), ``scaling``
(memory vs depth and vs patch size), ``breakdown``, ``timeline``, ``dice``, ``table`` and
``header``; ``memory`` gives peaks, breakdowns and timelines from the trials or the simulate
backend, one cache per report; ``common`` the helpers they share.
:func:`revprof.report.prepare.prepare` calls them in turn.
"""
