"""Compute engines: partitioned fits, scoring and statistics in-process (numpy) or on Dask.

Layer between the registry/training stages and the models: :mod:`.engines` (where tasks run),
:mod:`.partitions` (Parquet, Delta and CSV inputs as partitions), :mod:`.rows` (the
partition-independent train/test split), :mod:`.sketch` and :mod:`.profile` (mergeable
statistics and the FeatureSpec fitted from them), :mod:`.linear` (exact TSQR and minibatch
fits), :mod:`.scoring` (batch predictions to partitioned Parquet) and :mod:`.evaluation`
(metrics combined over partitions). Import the submodules directly; this package imports
nothing heavy.
"""
