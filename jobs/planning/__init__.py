"""Before any work: list the sources, probe videos into ranges, cut the plan into shards and save it with the run,
or reload the plan of the run being resumed; with ``--incremental``, leave out what earlier runs answered."""
