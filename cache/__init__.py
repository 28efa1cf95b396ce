"""The fingerprinted, sharded Parquet/HDF5 feature store.

Flow: :func:`~qfeat.cache.fingerprint.build_manifest` ->
:func:`~qfeat.cache.writer.create_stage_dir` -> :func:`~qfeat.cache.plan.plan_shards` /
:func:`~qfeat.cache.plan.split_done` -> :class:`~qfeat.cache.writer.ShardWriter` per shard
-> :func:`~qfeat.cache.reader.open_stage` to read.
"""
