"""The fingerprinted, sharded Parquet/HDF5 feature store."""
