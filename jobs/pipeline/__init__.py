"""The Ray side: start or join Ray, size the layout to the cluster, and stream the plan through the decode, model
and write stages; pipeline runs that fail are retried or narrowed down to the failing shard."""
