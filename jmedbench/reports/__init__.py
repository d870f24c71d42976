"""What commands write beside the results: a cohort from a dataset's subjects
(:mod:`~jmedbench.reports.cohort`), the corruption gallery and a run's severity plot
(:mod:`~jmedbench.reports.corruptions`), a dataset's summary and montage
(:mod:`~jmedbench.reports.dataset`). Built on the engine; the CLI only calls them."""
