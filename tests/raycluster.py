"""Ray clusters of the tests' own, started beside (never instead of) any other Ray on the machine,
and stopped by killing only their own processes."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.path.dirname(sys.executable)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_matching(text, timeout=20):
    """SIGKILL every process whose command line contains `text` (a cluster's own temp dir)."""
    def pids():
        found = []
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != os.getpid():
                try:
                    with open(f"/proc/{d}/cmdline", "rb") as f:
                        if text.encode() in f.read():
                            found.append(int(d))
                except OSError:
                    pass
        return found
    deadline = time.time() + timeout
    while (left := pids()) and time.time() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.3)


class FakeAutoscalingCluster:
    """A head with Ray's autoscaler and its fake node provider: worker node types (`resources`,
    `max_workers`) are started as local raylets when work asks for their resources. Like
    ray.cluster_utils.AutoscalingCluster, but on a free port and without `ray stop --force`."""

    def __init__(self, head_cpus, worker_types, dashboard_port=None):
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="rpas", dir="/tmp")
        self.address = f"127.0.0.1:{self.port}"
        nodes = {"ray.head.default": {"resources": {"CPU": head_cpus}, "node_config": {}, "max_workers": 0}}
        for name, spec in worker_types.items():
            nodes[name] = {"node_config": {}, "min_workers": 0, **spec}
        self.config = {
            "cluster_name": "fake", "max_workers": sum(s["max_workers"] for s in worker_types.values()),
            "upscaling_speed": 1.0, "idle_timeout_minutes": 5,
            "provider": {"type": "fake_multinode", "gcs_address": self.address, "disable_launch_config_check": True,
                         "disable_node_updaters": True},
            "auth": {"ssh_user": "ubuntu"}, "available_node_types": nodes, "head_node_type": "ray.head.default",
            **{k: [] for k in ("cluster_synced_files", "rsync_exclude", "rsync_filter", "initialization_commands",
                               "setup_commands", "head_setup_commands", "worker_setup_commands",
                               "head_start_ray_commands", "worker_start_ray_commands")},
            "file_mounts": {}, "file_mounts_sync_continuously": False,
        }
        self.head_cpus, self.dashboard_port = head_cpus, dashboard_port

    def __enter__(self):
        path = os.path.join(self.tmp, "autoscaler.yaml")
        with open(path, "w") as f:
            json.dump(self.config, f)
        env = dict(os.environ, AUTOSCALER_UPDATE_INTERVAL_S="1", RAY_FAKE_CLUSTER="1",
                   PATH=BIN + os.pathsep + os.environ["PATH"])
        dash = ["--include-dashboard=false"]
        if self.dashboard_port:   # and the job agent on a free port, beside any other Ray here
            dash = ["--include-dashboard=true", f"--dashboard-port={self.dashboard_port}",
                    "--dashboard-host=127.0.0.1", f"--dashboard-agent-listen-port={free_port()}"]
        subprocess.run([os.path.join(BIN, "ray"), "start", "--head", f"--port={self.port}",
                        f"--autoscaling-config={path}", f"--num-cpus={self.head_cpus}", "--num-gpus=0",
                        f"--temp-dir={self.tmp}", "--disable-usage-stats", *dash],
                       env=env, check=True, capture_output=True, timeout=120)
        return self

    def __exit__(self, *exc):
        kill_matching(self.tmp)
