"""The job's output as Apache Iceberg tables (``yolonas-batch iceberg``): the committed shards' own part files
added to catalog tables, one current row per frame. Only the ``iceberg`` command imports this package, so a run
never pays for pyiceberg's import."""
