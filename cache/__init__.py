"""The fingerprinted, sharded Parquet/HDF5 feature store.

Flow: :func:`~cache.fingerprint.build_manifest` -> :func:`~cache.writer.create_stage_dir`
-> :func:`~cache.plan.plan_shards` / :func:`~cache.plan.split_done` ->
:class:`~cache.writer.ShardWriter` per shard -> :func:`~cache.reader.open_stage` to read.
"""
