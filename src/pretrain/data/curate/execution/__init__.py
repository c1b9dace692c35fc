"""Running a pipeline: building it from config (``pipeline``), planning shards and scheduling tasks
(``runner``) on an executor (a local pool or Ray), one shard through one segment (``shardrun``), the
funnel's counts (``stats``) and the count of repeated record ids across shards (``idcheck``)."""
