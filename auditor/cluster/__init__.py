"""Scale-out on Dask distributed: the cluster connection, work units for ``run`` and ``sweep``,
and the distributed ``audit``. Nothing here imports Dask until a scheduler is asked for."""
