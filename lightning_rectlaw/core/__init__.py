"""The core: loss tables, budgets, the scaling laws and their fits, screening of bad runs,
calibrated prediction, the pooled fit and the paper's metrics.

Pure numpy/scipy. It imports nothing else of the package, and no framework: pandas and
Matplotlib are imported only inside the presentation helpers (``display``, ``figures``) that the
core objects' reprs and ``plot()`` call."""
