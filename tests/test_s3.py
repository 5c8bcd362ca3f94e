"""S3 keeps working: prepared data and a run directory in a bucket of a local S3 server (moto's
server mode speaks the S3 protocol over HTTP), with a driver killed and resumed on the session's Ray."""
import contextlib
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from raycluster import free_port
from runs import tiny_flags

from raypose.cli import main
from raypose.data.npz import read_npz, save_2d

pytestmark = [pytest.mark.ray, pytest.mark.slow]
BUCKET = "raypose-test"
J = 15   # HumanEva's 2D and 3D joints


def _wait_answers(url, proc, log, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"moto_server exited ({proc.returncode}) before answering:\n{log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return   # an HTTP answer of any status: it serves
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"moto_server did not answer at {url} within {timeout:.0f}s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def s3(ray_local, tmp_path_factory):
    """A local S3 server with one empty bucket; AWS_* point this process and its subprocesses at it.

    Depends on ray_local first, so the session's Ray and its workers never saw these variables
    (as a cluster started before the user's shell set them): drivers must pass them on."""
    import boto3

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=f, stderr=subprocess.STDOUT)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true",   # no credential look-ups on the network
           "AWS_CONFIG_FILE": str(log.parent / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(log.parent / "none")}
    saved = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}   # a developer's own AWS setup
    try:
        _wait_answers(env["AWS_ENDPOINT_URL"], proc, log)
        for k in saved:
            del os.environ[k]
        os.environ.update(env)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield boto3.client("s3")
    finally:
        for k in [k for k in os.environ if k.startswith("AWS_")]:
            del os.environ[k]
        os.environ.update(saved)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _raypose(*args):
    """`raypose ARGS` in this process (no Ray: these commands read and write S3 themselves);
    its exit status must be 0."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    assert code == 0, f"raypose {args[0]}: exit {code}: {out.getvalue()[-2000:]}{err.getvalue()[-2000:]}"
    return out.getvalue()


def _keys(s3, prefix):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"][len(prefix):] for page in pages for o in page.get("Contents", [])}


def _object(s3, key):
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _kill_group(proc):
    if proc.poll() is None:
        proc.kill()
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # that driver's own processes, and no others
    except ProcessLookupError:
        pass


def test_prepared_data_and_run_in_s3(s3, ray_local, tmp_path):
    import pyarrow.fs as pafs

    t0 = time.time()
    _raypose("synth", "--out", tmp_path / "npz", "--frames", 1200)
    _raypose("prepare", "--npz-dir", tmp_path / "npz", "--out", tmp_path / "prepared", "--actions", "Walk")
    pafs.copy_files(str(tmp_path / "prepared"), f"s3://{BUCKET}/prepared", source_filesystem=pafs.LocalFileSystem())
    assert "_raypose.json" in _keys(s3, "prepared/")
    t_data = time.time()

    run_uri = f"s3://{BUCKET}/run"
    address = ray_local.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "raypose.cli", "train", *tiny_flags(run_uri, iterations=2, epochs=1),
           "--data", f"s3://{BUCKET}/prepared", "--actions", "Walk", "--set", "run.cpus_per_member=1",
           "--address", address]
    # the driver SIGKILLs itself once iteration 1's record is in the bucket (its workers wait there)
    proc = subprocess.Popen(cmd + ["--set", "debug.kill_driver_at=1"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out = proc.communicate(timeout=240)[0].decode()
    finally:
        _kill_group(proc)
    t_killed = time.time()
    assert proc.returncode == -signal.SIGKILL, out[-3000:]
    assert "parquet s3://raypose-test/prepared" in out and "iter1.json" in _keys(s3, "run/checkpoints/")

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    t_resumed = time.time()
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert re.search(r"resuming after iteration 1\b", again.stdout) and "iter 2/2" in again.stdout, again.stdout
    assert "Token authentication" not in again.stdout + again.stderr   # nothing a user cannot act on
    assert "available CPUs" not in again.stdout + again.stderr

    _check_records(s3)
    _check_outputs(s3, run_uri, tmp_path)
    print(f"s3 test: data {t_data - t0:.0f}s, killed driver {t_killed - t_data:.0f}s, resumed "
          f"{t_resumed - t_killed:.0f}s, evaluate/predict/plot {time.time() - t_resumed:.0f}s")


def _check_records(s3):
    """Every file each iteration record lists is in the bucket, whole; no lease, no temp file."""
    files = _keys(s3, "run/")
    assert {"config.toml", "layout.json", "metrics.json", "checkpoints/iter1.json", "checkpoints/iter2.json"} <= files
    assert "lease.json" not in files and not [f for f in files if ".tmp-" in f]
    for i in (1, 2):   # what each record lists is whole in the bucket (older iterations' resume files are pruned)
        listed = json.loads(_object(s3, f"run/checkpoints/iter{i}.json"))["files"]
        kept = {n: sha for n, sha in listed.items() if i == 2 or not n.endswith(".resume")}
        assert len(kept) >= 2 and {f"checkpoints/{n}" for n in kept} <= files, (i, sorted(listed), sorted(files))
        assert all(hashlib.sha256(_object(s3, f"run/checkpoints/{n}")).hexdigest() == sha for n, sha in kept.items())


def _check_outputs(s3, run_uri, tmp_path):
    """evaluate, predict and plot read the run from S3 (and evaluate and plot write into it)."""
    _raypose("evaluate", "--run", run_uri, "--no-curve")
    metrics = json.loads(_object(s3, "run/metrics.json"))
    assert metrics["iteration"] == 2 and len(metrics["curve"]) == 2   # training's part stays
    ev = metrics["evaluation"]
    assert {"summary", "table", "member_summaries", "aggregates", "ensemble_size", "per_joint",
            "calibration"} <= set(ev) and ev["iteration"] == 2 and ev["members"] == 2
    assert np.isfinite(ev["summary"]["mpjpe"]) and ev["summary"]["mpjpe"] > 0
    assert _object(s3, "run/evaluation.md").startswith(b"# Evaluation")

    inp = tmp_path / "in2d.npz"   # one subject's tracks, 3 cameras each, of the synthetic 2D
    synth_2d = read_npz(tmp_path / "npz" / "data_2d_humaneva15_gt.npz")["positions_2d"]
    save_2d(inp, {"Validate/S1": synth_2d["Validate/S1"]}, {})
    _raypose("predict", "--run", run_uri, "--input", inp, "--out", tmp_path / "pred.npz")
    got = read_npz(tmp_path / "pred.npz")
    for subject, actions in read_npz(inp)["positions_2d"].items():
        for action, cams in actions.items():
            pos, unc = got["positions_3d"][subject][action], got["uncertainty"][subject][action]
            assert [p.shape for p in pos] == [(len(kp), J, 3) for kp in cams]
            assert [u.shape for u in unc] == [(len(kp), J) for kp in cams]
            assert all(np.isfinite(p).all() for p in pos) and all(np.isfinite(u).all() for u in unc)

    # plots are drawn locally, then written into the run in the bucket: whole PNGs under run/plots/
    out = _raypose("plot", "--run", run_uri)
    pngs = sorted(f for f in _keys(s3, "run/plots/") if f.endswith(".png"))
    # no iterations.png: evaluate ran with --no-curve
    assert pngs == ["ensemble_size.png", "heatmap_p_mpjpe.png", "per_joint.png", "reliability.png",
                    "sparsification.png"], \
        sorted(_keys(s3, "run/plots/"))
    assert not [f for f in _keys(s3, "run/") if ".tmp-" in f]
    for name in pngs:
        assert _object(s3, f"run/plots/{name}").startswith(b"\x89PNG\r\n\x1a\n"), name
        assert f"wrote {run_uri}/plots/{name}" in out
