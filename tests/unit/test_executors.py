"""Where the training fan-out runs: local processes, or a Dask cluster named by address.

The choice of task runner, the address check of the configuration, a real (in-process) Dask
scheduler answering the reachability check, and ``factory run --dask`` at an address where
nothing listens failing with one short message. The factory on a real multi-process cluster
is tests/flows/test_zoo_in_the_factory.py.
"""

from __future__ import annotations

import shutil

import pytest
import yaml
from distributed import LocalCluster
from prefect.task_runners import ProcessPoolTaskRunner
from prefect_dask import DaskTaskRunner
from pydantic import ValidationError
from typer.testing import CliRunner

from factory.cli import app
from factory.config import CONF_DIR, ConfigError, ExecutionConfig, load_config
from flows.executors import (
    CONNECT_TIMEOUT_ENV,
    DaskSchedulerError,
    check_dask_scheduler,
    task_runner,
)
from flows.runtime import free_port


def test_without_an_address_the_fan_out_uses_local_processes():
    runner = task_runner(ExecutionConfig(workers=3))
    assert isinstance(runner, ProcessPoolTaskRunner) and runner._max_workers == 3
    assert task_runner(ExecutionConfig(workers=3), workers=5)._max_workers == 5


def test_an_address_selects_dask_and_the_argument_beats_the_configuration():
    configured = ExecutionConfig(dask_address="tcp://10.0.0.5:8786")
    runner = task_runner(configured)
    assert isinstance(runner, DaskTaskRunner) and runner.address == "tcp://10.0.0.5:8786"
    assert runner.client_kwargs["timeout"] > 0  # not Dask's 30 s default wait, see below
    chosen = task_runner(configured, workers=4, dask_address="tls://[::1]:9000")
    assert isinstance(chosen, DaskTaskRunner) and chosen.address == "tls://[::1]:9000"
    with pytest.raises(ValueError, match="expected tcp://HOST:PORT"):
        task_runner(ExecutionConfig(), dask_address="10.0.0.5:8786")


@pytest.mark.parametrize("address", ["localhost:8786", "http://host:8786", "tcp://host",
                                     "tcp://:8786", "tcp://host:99999", "tcp://a b:1",
                                     "tcp://host:8786/path"])
def test_a_malformed_dask_address_is_refused_with_the_expected_form(address):
    with pytest.raises(ValidationError, match="expected tcp://HOST:PORT or tls://HOST:PORT"):
        ExecutionConfig(dask_address=address)


def test_a_malformed_address_in_conf_names_the_files(tmp_path):
    conf = shutil.copytree(CONF_DIR, tmp_path / "conf")
    with (conf / "execution.yaml").open("a") as fh:
        fh.write("dask_address: scheduler:8786\n")
    with pytest.raises(ConfigError, match="execution.yaml") as caught:
        load_config("demo", conf_dir=conf)
    assert "'scheduler:8786': expected tcp://HOST:PORT" in str(caught.value)
    shipped = yaml.safe_load((CONF_DIR / "execution.yaml").read_text())
    assert ExecutionConfig.model_validate(shipped).dask_address is None  # local processes


def test_a_real_scheduler_answers_and_threaded_or_missing_workers_are_noticed():
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster:
        found = check_dask_scheduler(cluster.scheduler_address, timeout=60)
        assert list(found.worker_threads.values()) == [2]
        assert [n for n in found.notices() if "--nthreads 1" in n]
    with LocalCluster(n_workers=0, processes=False, protocol="tcp",
                      dashboard_address=None) as empty:
        assert "has no workers yet" in check_dask_scheduler(empty.scheduler_address,
                                                            timeout=60).notices()[0]


def test_nothing_listening_at_the_address_is_a_clear_error():
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(DaskSchedulerError, match=f"no Dask scheduler answered at {address}"):
        check_dask_scheduler(address, timeout=1)


def test_factory_run_with_an_unreachable_dask_scheduler_fails_in_one_line(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / ".prefect"))
    monkeypatch.setenv(CONNECT_TIMEOUT_ENV, "1")
    address = f"tcp://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["run", "--dask", address])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"error: no Dask scheduler answered at {address}")
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "data").exists()  # nothing started: no lock, no lake, no cache
