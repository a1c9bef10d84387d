"""`data build` on Dask distributed: a real scheduler and worker started as subprocesses on
localhost (`dask scheduler`, `dask worker`), a local cluster (`--workers 2`), an unreachable
scheduler, resume, Ctrl-C, and failure isolation; every Dask build must write the files a serial
build writes."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import dask
import distributed
import h5py
import numpy as np
import psutil
import pytest

from invdesign.cli.main import main
from invdesign.core.errors import InvdesignError
from invdesign.data.build.chili3k import build_chili3k_source, chili3k_sources
from invdesign.data.build.runner import REPORT_NAME, Outcome, run_tasks
from invdesign.data.hdf5_io import read_chili_file
from invdesign.testing import make_tiny_chili3k

METALS = ["Ni", "Zn"]
TYPES = ["RockSalt", "Wurtzite"]
BUILD = ["data", "build", "chili3k", "--metals", *METALS, "--crystal-types", *TYPES,
         "--radii", "3", "--no-progress"]


def h5_everything(path: Path) -> tuple[dict[str, tuple], dict[str, dict]]:
    """Every dataset (dtype, shape, bytes) and every attribute set of an HDF5 file, by path."""
    data: dict[str, tuple] = {}
    attrs: dict[str, dict] = {}

    def visit(name: str, obj: h5py.Dataset | h5py.Group) -> None:
        attrs[name] = {k: np.asarray(v).tobytes() for k, v in obj.attrs.items()}
        if isinstance(obj, h5py.Dataset):
            value = np.asarray(obj[()])
            data[name] = (value.dtype.str, value.shape, value.tobytes())

    with h5py.File(path, "r") as h5:
        visit("/", h5)
        h5.visititems(visit)
    return data, attrs


def assert_same_files(folder: Path, reference: Path) -> None:
    names = sorted(p.name for p in folder.glob("*.h5"))
    assert names == sorted(p.name for p in reference.glob("*.h5")) and names
    for name in names:
        data, attrs = h5_everything(folder / name)
        ref_data, ref_attrs = h5_everything(reference / name)
        assert sorted(data) == sorted(ref_data), name
        for key in ref_data:  # every array, bit for bit
            assert data[key] == ref_data[key], f"{name}:{key}"
        assert attrs == ref_attrs, name  # the files carry no timestamps: attributes match too


@pytest.fixture(scope="module")
def serial_build(tmp_path_factory) -> Path:
    """The reference: the same cells built serially in this process."""
    return make_tiny_chili3k(tmp_path_factory.mktemp("serial") / "out", metals=METALS,
                             crystal_types=TYPES, radii=(3.0,))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory) -> Iterator[str]:
    """A running cluster: `dask scheduler` and one `dask worker` (one process, one thread) as
    subprocesses on localhost; yields the scheduler address once the worker has registered."""
    work = tmp_path_factory.mktemp("cluster")
    address = f"tcp://127.0.0.1:{free_port()}"
    dask_cli = [sys.executable, "-m", "dask"]
    logs = [open(work / "scheduler.log", "w"), open(work / "worker.log", "w")]  # noqa: SIM115
    procs = [subprocess.Popen([*dask_cli, "scheduler", "--host", "127.0.0.1", "--port",
                               address.rsplit(":", 1)[1], "--no-dashboard"],
                              cwd=work, stdout=logs[0], stderr=subprocess.STDOUT)]
    try:
        procs.append(subprocess.Popen([*dask_cli, "worker", address, "--nworkers", "1",
                                       "--nthreads", "1", "--no-dashboard", "--local-directory",
                                       str(work)], cwd=work, stdout=logs[1],
                                      stderr=subprocess.STDOUT))
        with distributed.Client(address, timeout=120, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=180)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for log in logs:
            log.close()


def executed_on_cluster(address: str) -> int:
    """How many `invdesign-build` units the cluster's scheduler has seen finish."""
    with distributed.Client(address, timeout=30, set_as_default=False) as client:
        return client.run_on_scheduler(
            lambda dask_scheduler: int(
                dask_scheduler.task_prefixes["invdesign-build"].state_counts["forgotten"]
            )
            if "invdesign-build" in dask_scheduler.task_prefixes
            else 0
        )


def test_build_on_a_running_scheduler_writes_the_serial_files(
    tmp_path, scheduler, serial_build, capsys
) -> None:
    before = executed_on_cluster(scheduler)
    out = tmp_path / "dask"
    assert main([*BUILD, "--out", str(out), "--scheduler", scheduler]) == 0
    assert "4 written, 0 exists, 0 rejected, 0 failed" in capsys.readouterr().out
    assert executed_on_cluster(scheduler) - before == 4  # the cluster's worker did the work
    assert_same_files(out, serial_build)
    report = (out / REPORT_NAME).read_text()
    assert report == (serial_build / REPORT_NAME).read_text()  # same order, same outcomes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dask"]  # no lock or .part left


def test_resume_on_a_running_scheduler(tmp_path, scheduler, serial_build, capsys) -> None:
    """A partial build (one file missing, one truncated, a stray .part) is completed through the
    cluster; the complete file is left alone."""
    out = make_tiny_chili3k(tmp_path / "out", metals=METALS, crystal_types=TYPES, radii=(3.0,))
    (out / "RockSalt_NiO.h5").unlink()
    truncated = out / "Wurtzite_ZnO.h5"
    truncated.write_bytes(truncated.read_bytes()[:1000])
    (out / ".RockSalt_NiO.h5.x1y2z3.part").write_bytes(b"half")
    kept = {n: (out / n).stat().st_mtime_ns for n in ("Wurtzite_NiO.h5", "RockSalt_ZnO.h5")}
    assert main([*BUILD, "--out", str(out), "--scheduler", scheduler]) == 0
    printed = capsys.readouterr().out
    assert "2 written (1 rebuilt over a broken file), 2 exists" in printed
    assert {n: (out / n).stat().st_mtime_ns for n in kept} == kept
    assert_same_files(out, serial_build)
    assert not list(out.glob(".*.part"))
    report = (out / REPORT_NAME).read_text()
    assert "RockSalt_NiO\twritten\t\n" in report and "Wurtzite_ZnO\twritten\trebuilt: " in report


def test_workers_that_do_not_see_the_output_folder_are_refused(tmp_path, scheduler) -> None:
    """`--out` must be on a file system the workers share; a folder they do not see is refused
    before any unit is sent (here: a folder that exists nowhere)."""
    from invdesign.data.build.dask_cluster import check_workers_see, connect

    client = connect(scheduler)
    try:
        check_workers_see(client, tmp_path)  # the same machine: seen
        with pytest.raises(InvdesignError, match=r"Dask worker tcp://127\.0\.0\.1:\d+ does not "
                           r"see the output folder \(1 of 1 do not\); --out must be on a file "
                           "system every worker shares"):
            check_workers_see(client, tmp_path / "elsewhere")
    finally:
        client.close()


def test_a_scheduler_without_workers_is_one_line(tmp_path) -> None:
    from invdesign.data.build.dask_cluster import connect

    address = f"tcp://127.0.0.1:{free_port()}"
    with open(tmp_path / "scheduler.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1",
                                 "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
                                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        try:
            with distributed.Client(address, timeout=120, set_as_default=False):
                pass  # the scheduler is up
            with pytest.raises(InvdesignError) as caught:
                connect(address, worker_wait=2)
        finally:
            _stop(proc)
    assert str(caught.value) == (f"--scheduler: Dask scheduler {address} has no workers after "
                                 f"2 s; start some with `dask worker {address}`")


def _fails_for_zn_rocksalt(source, out_dir: Path) -> Outcome:
    if source.name == "RockSalt_ZnO":
        raise ZeroDivisionError("a bug in one unit")
    return build_chili3k_source(source, out_dir)


def _worker_state(source, out_dir: Path) -> Outcome:
    """The unit's torch threads, process id, and the minor page faults of 100 allocations of a
    4 MiB array (each would fault its 1,024 pages in again if freed memory went back to the OS)."""
    import resource  # noqa: PLC0415 - runs on the worker

    import torch  # noqa: PLC0415 - runs on the worker

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(100):
        np.ones(1 << 19).sum()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return Outcome(source.name, "rejected",
                   f"threads={torch.get_num_threads()} pid={os.getpid()} faults={faults}")


class ByValue:
    """A test module's work function that pickles by value: the scheduler and the workers cannot
    import a test module, and Dask pickles a task's arguments by reference where it can."""

    def __init__(self, func) -> None:
        module = sys.modules[func.__module__]
        cloudpickle.register_pickle_by_value(module)
        try:
            self.payload = cloudpickle.dumps(func)
        finally:
            cloudpickle.unregister_pickle_by_value(module)
        self.func = func

    def __call__(self, *args):
        return self.func(*args)

    def __reduce__(self):
        return cloudpickle.loads, (self.payload,)


@pytest.mark.parametrize("where", ["scheduler", "local"])
def test_a_unit_raising_is_failed_and_the_others_finish(tmp_path, where, request,
                                                       serial_build) -> None:
    sources = chili3k_sources(METALS, TYPES, (3.0,))
    kwargs = ({"scheduler": request.getfixturevalue("scheduler")} if where == "scheduler"
              else {"workers": 2})
    summary = run_tasks(sources, ByValue(_fails_for_zn_rocksalt), tmp_path / "out", progress=False,
                        **kwargs)
    status = {o.name: (o.status, o.reason) for o in summary.outcomes}
    assert status.pop("RockSalt_ZnO") == ("failed", "ZeroDivisionError: a bug in one unit")
    assert set(status.values()) == {("written", "")} and len(status) == 3
    assert not (tmp_path / "out" / "RockSalt_ZnO.h5").exists()
    for name in status:
        assert h5_everything(tmp_path / "out" / f"{name}.h5") == h5_everything(
            serial_build / f"{name}.h5")


def _dies_for_zn_rocksalt(source, out_dir: Path) -> Outcome:
    if source.name == "RockSalt_ZnO":
        os._exit(3)  # a crash in native code, the OOM killer
    return build_chili3k_source(source, out_dir)


@pytest.mark.slow
def test_a_unit_killing_its_worker_is_failed_and_the_others_finish(tmp_path) -> None:
    sources = chili3k_sources(METALS, TYPES, (3.0,), simulate=False)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # no retries: faster
        summary = run_tasks(sources, ByValue(_dies_for_zn_rocksalt), tmp_path / "out", workers=2,
                            progress=False)
    status = {o.name: o for o in summary.outcomes}
    died = status.pop("RockSalt_ZnO")
    assert died.status == "failed" and died.reason.startswith("KilledWorker: ")
    # 'exists' is right too: the dead worker may have held another unit's finished outcome, which
    # Dask then computes again, and that second run finds the complete file its first run wrote
    assert {o.status for o in status.values()} <= {"written", "exists"}
    for name in status:
        read_chili_file(tmp_path / "out" / f"{name}.h5")


def test_local_workers_use_one_torch_thread_and_reuse_freed_memory(tmp_path) -> None:
    """One torch thread per worker; and the allocator keeps freed memory although Dask's nanny
    sets MALLOC_TRIM_THRESHOLD_=65536 (which made every unit re-fault its arrays' pages)."""
    sources = chili3k_sources(METALS, TYPES, (3.0,), simulate=False)
    summary = run_tasks(sources, ByValue(_worker_state), tmp_path / "out", workers=2,
                        progress=False)
    state = [dict(kv.split("=") for kv in o.reason.split()) for o in summary.outcomes]
    assert {s["threads"] for s in state} == {"1"}, state
    pids = {s["pid"] for s in state}
    assert str(os.getpid()) not in pids and 1 <= len(pids) <= 2  # worker processes, not this one
    assert max(int(s["faults"]) for s in state) < 10 * 1024, state  # 100 x 1,024 without reuse


def test_local_cluster_of_two_workers_writes_the_serial_files(tmp_path, serial_build,
                                                              capsys) -> None:
    out = tmp_path / "local"
    assert main([*BUILD, "--out", str(out), "--workers", "2"]) == 0
    assert "4 written, 0 exists, 0 rejected, 0 failed" in capsys.readouterr().out
    assert_same_files(out, serial_build)
    assert (out / REPORT_NAME).read_text() == (serial_build / REPORT_NAME).read_text()


def test_unreachable_scheduler_is_one_line_and_writes_nothing(tmp_path, capsys) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    code = main([*BUILD, "--out", str(tmp_path / "out"), "--scheduler", address])
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"invdesign: error: --scheduler: cannot reach Dask scheduler {address} (")
    assert elapsed < 30, elapsed  # a 5 s connect timeout, not Dask's default 30 s
    assert list(tmp_path.iterdir()) == []  # no folder, no lock

    for argv, needle in [
        (["--scheduler", "127.0.0.1"], "not a Dask scheduler address '127.0.0.1'"),
        (["--scheduler", "foo://127.0.0.1:1"], "unknown address scheme 'foo'"),
        (["--scheduler", address, "--workers", "2"], "--workers sizes a local cluster"),
    ]:
        assert main([*BUILD, "--out", str(tmp_path / "out"), *argv]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1 and err.startswith("invdesign: error: ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_switches_all_logging_off_until_the_block_ends(sig) -> None:
    """distributed's logging config gives `tornado.application` a level of its own: quietening
    `tornado` let a cancelled gather's traceback through on an interrupted build (CI, stop 33)."""
    from invdesign.data.build.dask_cluster import _signals_interrupt

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.name)

    keep = Keep()
    logging.getLogger().addHandler(keep)
    try:
        with pytest.raises(KeyboardInterrupt, match=signal.Signals(sig).name), \
                _signals_interrupt():
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler raises here; the sleep only bounds a lost signal
        assert logging.root.manager.disable == logging.NOTSET
        logging.getLogger("tornado.application").error("after the block")
    finally:
        logging.getLogger().removeHandler(keep)
    assert seen == ["tornado.application"]


def test_logging_stays_off_during_the_unwinding() -> None:
    from invdesign.data.build.dask_cluster import _signals_interrupt

    during: list[bool] = []
    with pytest.raises(KeyboardInterrupt), _signals_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        finally:  # where the cluster's close runs: the tornado logger must be off
            during.append(logging.getLogger("tornado.application").isEnabledFor(logging.ERROR))
    assert during == [False]


@pytest.mark.parametrize("sig, group", [
    (signal.SIGINT, True),  # Ctrl-C in a terminal: the whole process group
    pytest.param(signal.SIGTERM, False, marks=pytest.mark.slow),  # `kill PID`
], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_leaves_no_worker_and_the_build_resumes(tmp_path, serial_build, sig,
                                                       group) -> None:
    """Ctrl-C or SIGTERM during a local-cluster build: the CLI ends with one line, no worker
    process outlives it, every .h5 left is complete, and a rerun finishes the set."""
    # all 12 types (24 units): with 8, a fast machine finished the build before the signal
    types = ["RockSalt", "Wurtzite", "CaesiumChloride", "Rutile", "AntiFluorite",
             "CadmiumChloride", "CadmiumIodide", "Fluorite", "NickelArsenide", "Perovskite",
             "RheniumTrioxide", "ZincBlende"]
    argv = ["data", "build", "chili3k", "--metals", *METALS, "--crystal-types", *types,
            "--radii", "3", "--no-progress", "--workers", "2", "--out", str(tmp_path / "out")]
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "invdesign.cli.main", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("*.h5")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no file after 300 s"
            time.sleep(0.02)
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert len(workers) >= 2  # the local cluster's worker processes
        (os.killpg if group else os.kill)(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130 and err == "invdesign: interrupted\n", err
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert alive == [], alive
    done = sorted(out.glob("*.h5"))
    assert 1 <= len(done) < len(METALS) * len(types), "the build was not interrupted"
    for path in done:
        read_chili_file(path)
    assert main(argv) == 0
    assert len(list(out.glob("*.h5"))) == len(METALS) * len(types)
    report = (out / REPORT_NAME).read_text()
    assert report.count("\texists") == len(done)
    for name in ("RockSalt_NiO.h5", "Wurtzite_ZnO.h5"):  # the serial reference's cells
        assert h5_everything(out / name) == h5_everything(serial_build / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
