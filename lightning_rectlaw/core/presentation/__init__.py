"""How the core's objects show themselves, apart from the math: numbers (``formatting``), HTML
and pandas tables (``display``) and figures (``figures``). The math modules call them from their
reprs and ``plot`` methods; pandas and Matplotlib are imported only inside functions."""
