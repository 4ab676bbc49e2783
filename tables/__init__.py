"""The job's output as Apache Iceberg tables (``yolonas-batch iceberg``): the committed shards' (and tracks') own
part files added to catalog tables, one current row per frame (of each video, its newest tracks). Only the
``iceberg`` command and runs with ``--iceberg`` import this package, so other runs never pay for pyiceberg's
import."""
