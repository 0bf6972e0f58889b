"""The distributed path for real: a Dask scheduler and two worker processes on this machine
(``distributed.LocalCluster``) run a tiny ``compare-scaling`` study through ``--dask``, and
its results equal those of the same study run locally. Skipped without ``distributed`` (the
``cluster`` extra; the ``test`` extra installs it)."""
import csv

import pytest

from minieffnet.cli import main

distributed = pytest.importorskip("distributed")

# Two models (base, width x2), one seed, one short epoch on a few synthetic images.
STUDY = ["compare-scaling", "--dataset", "synthetic", "--train-size", "64", "--test-size", "32",
         "--width", "0.1", "--depth", "0.1", "--resolution", "16", "--epochs", "1",
         "--batch-size", "32", "--seeds", "1", "--targets", "2", "--strategies", "width"]
TIMING = {"train_time_s"}  # wall time differs between any two runs


def _results(folder):
    with open(folder / "results.csv", newline="", encoding="utf-8") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def test_compare_scaling_on_a_dask_cluster_equals_a_local_run(tmp_path, capsys):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        try:
            assert main([*STUDY, "--out", str(tmp_path / "dask"),
                         "--dask", cluster.scheduler_address]) == 0
            client = distributed.default_client()  # the one dask_executor opened
            workers = client.run(lambda: "up")
            computed = client.run_on_scheduler(  # seconds the workers spent per task name
                lambda dask_scheduler: {k: v.all_durations["compute"]
                                        for k, v in dask_scheduler.task_prefixes.items()})
        finally:
            distributed.default_client().close()
    assert len(workers) == 2
    assert set(computed) == {"run_trial"} and computed["run_trial"] > 0  # trained out there
    assert main([*STUDY, "--out", str(tmp_path / "local")]) == 0
    capsys.readouterr()
    dask, local = _results(tmp_path / "dask"), _results(tmp_path / "local")
    assert [row["model"] for row in dask] == ["base", "width-x2"]
    assert dask == local
