"""The ``yolonas-batch`` command: one entry point over the detection job (``jobs/``) and what reads its output
back (``exports/``), which sits above both so that neither imports the other."""
