"""Network partitions for process-backend clusters: a userspace TCP proxy in front of the nodes.

`tc netem` is absent here, and network namespaces would take the nodes off 127.0.0.1; so
the public ports of a process cluster (the spec's client and cluster ports, which clients,
routes and advertisements use) belong to one proxy process per cluster, which forwards each
to its node's inner port. Partitioning node X turns every connection with X at either end
into a blackhole: bytes stop flowing both ways while the sockets stay open, as when a network
drops packets, so peers and clients notice only through their pings. New connections that
involve X are accepted and then hang, as a dropped SYN would. Healing lets held bytes flow.

A route has two ends: the node whose cluster port it reached (the listener says) and the
node that dialled it, read from the kernel: the socket whose local port is the route's
source port belongs to one of the node processes (/proc/net/tcp, /proc/<pid>/fd).

    python -m drills.twin.nats.netfault --plan DIR/netfault.json   # ProcessCluster starts it
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import functools
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drills.errors import TwinError
from drills.twin.nats.cluster import wait_for
from drills.twin.procs import live_pid, signal_quietly, still_running

PLAN_FILE = "netfault.json"  # what to listen on, written by the cluster before start
STATE_FILE = "netfault.state.json"  # the partition in force, so a restarted proxy keeps it
PID_FILE = "netfault.pid"
LOG_FILE = "netfault.log"
_MODULE = "drills.twin.nats.netfault"
_PROJECT_ROOT = Path(__file__).resolve().parents[3]  # holds the `drills` package
_CHUNK = 65536
_RCVBUF = 16384  # bytes; the kernel doubles it
_MSS = 1448  # an Ethernet segment, not loopback's 64 KiB


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True, slots=True)
class Listener:
    """One public port of the proxy: whose it is, what it carries, where it forwards."""

    node: str
    kind: str  # "client" or "route"
    port: int
    upstream: int


def write_plan(workdir: Path, control_port: int, listeners: Iterable[Listener],
               pid_files: dict[str, str]) -> None:
    """Write what the proxy of the cluster in `workdir` must listen on (no secrets in it)."""
    plan = {"control_port": control_port, "pid_files": pid_files,
            "listeners": [{"node": x.node, "kind": x.kind, "port": x.port,
                           "upstream": x.upstream} for x in listeners]}
    (workdir / PLAN_FILE).write_text(json.dumps(plan, indent=2) + "\n")


# ------------------------------------------------------------------ control, from any process


class ProxyHandle:
    """Start, stop and steer the proxy of the cluster in `workdir`, from any process."""

    def __init__(self, workdir: Path, control_port: int) -> None:
        self.workdir, self.control_port = Path(workdir), control_port

    def pid(self) -> int | None:
        """Pid of the live proxy, or None."""
        return live_pid(self.workdir / PID_FILE, str(self.workdir / PLAN_FILE))

    def start(self, timeout: float = 10.0) -> None:
        """Start the proxy unless it runs; return once every port listens."""
        if self.pid() is not None:
            return
        (self.workdir / PID_FILE).unlink(missing_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        with (self.workdir / LOG_FILE).open("ab") as log:
            proc = subprocess.Popen(
                # -c, not -m: the package imports this module first, which -m warns about.
                [sys.executable, "-c", f"from {_MODULE} import main; main()",
                 "--plan", str(self.workdir / PLAN_FILE)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)  # outlives us, deaf to our terminal's signals
        threading.Thread(target=proc.wait, name="reap-netfault", daemon=True).start()
        if not wait_for(lambda: self.pid() == proc.pid or proc.returncode is not None, timeout):
            proc.kill()
        if self.pid() != proc.pid:
            raise TwinError(f"the NATS network proxy did not start: {self.log_tail()}")

    def stop(self) -> None:
        """Stop the proxy (idempotent); every proxied connection closes."""
        if (pid := self.pid()) is None:
            return

        marker = str(self.workdir / PLAN_FILE)

        def gone() -> bool:  # the process, not its pid file: that goes first, on the way out
            return not still_running(pid, marker)

        signal_quietly(pid, signal.SIGTERM)
        if not wait_for(gone, 5):
            if still_running(pid, marker):
                signal_quietly(pid, signal.SIGKILL)
            if not wait_for(gone, 5):
                raise TwinError(f"the NATS network proxy (pid {pid}) survived SIGKILL")
        (self.workdir / PID_FILE).unlink(missing_ok=True)

    def partitioned(self) -> set[str]:
        """The nodes cut off now: asked of the proxy, or read from its state file if it is
        down (a proxy that starts again puts that partition back in force)."""
        if self.pid() is not None:
            with contextlib.suppress(OSError, ValueError):
                return set(self._call({})["partitioned"])
        return read_state(self.workdir)

    def set_partitioned(self, names: set[str]) -> None:
        """Make exactly `names` partitioned; returns once the proxy applies it."""
        write_state(self.workdir, names)  # survives a proxy restart
        if self.pid() is not None:
            self._apply({"partitioned": sorted(names)}, names)

    def cut(self, name: str) -> None:
        """Partition `name` as well (atomic in the proxy: concurrent cuts all stick)."""
        if self.pid() is None:
            raise TwinError(f"the NATS network proxy in {self.workdir} is not running: "
                            f"{self.log_tail(3)}; restart the twin")
        self._apply({"cut": [name]}, None, name)

    def heal(self, name: str) -> None:
        """End the partition of `name` (idempotent), in the proxy or in its state file."""
        if self.pid() is None:
            write_state(self.workdir, read_state(self.workdir) - {name})
            return
        self._apply({"heal": [name]}, None, None, name)

    def _apply(self, request: dict[str, Any], exactly: set[str] | None,
               present: str | None = None, absent: str | None = None) -> None:
        try:
            applied = set(self._call(request)["partitioned"])
        except (OSError, ValueError, KeyError) as exc:
            raise TwinError(f"the NATS network proxy did not answer on port "
                            f"{self.control_port} ({exc}); see {self.workdir / LOG_FILE}") from exc
        if ((exactly is not None and applied != exactly) or (present and present not in applied)
                or (absent and absent in applied)):
            raise TwinError(f"the NATS network proxy refused {request} (partitioned now: "
                            f"{sorted(applied)}); see {self.workdir / LOG_FILE}")

    def log_tail(self, lines: int = 10) -> str:
        """The end of the proxy's log, for error messages."""
        try:
            text = (self.workdir / LOG_FILE).read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=5) as sock:
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                if not (chunk := sock.recv(4096)):
                    break
                data += chunk
        return dict(json.loads(data))


def read_state(workdir: Path) -> set[str]:
    """The partition recorded in `workdir` (empty when none)."""
    try:
        return set(json.loads((Path(workdir) / STATE_FILE).read_text())["partitioned"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def write_state(workdir: Path, names: set[str]) -> None:
    """Record the partition atomically."""
    path = Path(workdir) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"partitioned": sorted(names)}))
    os.replace(tmp, path)


# ------------------------------------------------------------------ the proxy itself


class Gate:
    """Which nodes are cut off; pumps wait here while a connection touches one of them."""

    def __init__(self, cut: set[str]) -> None:
        self.cut = frozenset(cut)
        self._changed = asyncio.Condition()

    async def wait_open(self, ends: frozenset[str]) -> None:
        """Return at once if no end of the connection is cut off, else once healed."""
        if ends & self.cut:
            async with self._changed:
                await self._changed.wait_for(lambda: not ends & self.cut)

    async def set(self, cut: set[str]) -> None:
        async with self._changed:
            self.cut = frozenset(cut)
            self._changed.notify_all()


def _socket(listen_port: int | None = None) -> socket.socket:
    """A TCP socket with a small, fixed receive buffer and an Ethernet-sized segment.

    A cut-off connection is one the proxy stops reading. On a real network the sender then
    gets no acknowledgements; here the kernel goes on acknowledging into the proxy's buffer,
    which Linux would grow to megabytes over loopback's 64 KiB segments. Small buffers
    (inherited by accepted sockets) keep what a cut-off connection absorbs near a real
    network's. (Checked: a partition under the same load ends after the same ~88 s of
    flapping on this proxy as with iptables in a container's namespace.)
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, _MSS)
    if listen_port is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", listen_port))
        sock.listen(128)
    return sock


def dialler(source_port: int, listen_port: int, pid_files: dict[str, str]) -> str | None:
    """The node whose process owns the socket 127.0.0.1:source_port -> 127.0.0.1:listen_port."""
    inode = socket_inode(source_port, listen_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for node, pid_file in pid_files.items():
        with contextlib.suppress(OSError, ValueError):
            fd_dir = Path(f"/proc/{int(Path(pid_file).read_text().strip())}/fd")
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == target:
                        return node
    return None


def socket_inode(local_port: int, remote_port: int) -> int | None:
    """The inode of the TCP socket 127.0.0.1:local_port -> 127.0.0.1:remote_port, asked of
    the kernel by address (sock_diag); where that is refused, found in /proc/net/tcp, whose
    every read lists every socket of the machine (15 ms with a few thousand: each route
    accepted during a cluster's formation paid it)."""
    try:
        return _diag_inode(local_port, remote_port)
    except OSError:
        return _proc_inode(local_port, remote_port)


_SOCK_DIAG_BY_FAMILY, _NLMSG_ERROR, _NLM_F_REQUEST = 20, 2, 1
_NO_COOKIE = 0xFFFFFFFF
_LOOPBACK = socket.inet_aton("127.0.0.1") + bytes(12)  # an idiag_src/dst: 4 x __be32


def _diag_inode(local_port: int, remote_port: int) -> int | None:
    """One inet_diag_req_v2 for exactly that socket (linux/inet_diag.h); None if it has none."""
    sockid = (struct.pack("!HH", local_port, remote_port) + _LOOPBACK + _LOOPBACK
              + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE))
    request = struct.pack("=BBBxI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0) + sockid
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4) as diag:  # NETLINK_SOCK_DIAG
        diag.settimeout(1.0)
        diag.send(header + request)
        reply = diag.recv(8192)
    if struct.unpack_from("=H", reply, 4)[0] == _NLMSG_ERROR:
        (error,) = struct.unpack_from("=i", reply, 16)  # a negative errno
        if error == -errno.ENOENT:
            return None
        raise OSError(-error, os.strerror(-error))
    # inet_diag_msg: family, state, timer, retrans (4 x u8), sockid (48 bytes), expires,
    # rqueue, wqueue, uid, inode (5 x u32)
    return int(struct.unpack_from("=I", reply, 16 + 4 + 48 + 16)[0])


def _proc_inode(local_port: int, remote_port: int) -> int | None:
    local, remote = f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}"
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1] == local and fields[2] == remote:
                return int(fields[9])
    return None


class Proxy:
    """Every listener of one cluster, the gate, and the control port."""

    def __init__(self, plan: dict[str, Any], state_dir: Path) -> None:
        self.plan, self.state_dir = plan, state_dir
        self.listeners = [Listener(**x) for x in plan["listeners"]]
        self.gate = Gate(read_state(state_dir))
        self.connections = 0
        self._servers: list[asyncio.AbstractServer] = []

    async def serve(self, stop: asyncio.Event) -> None:
        for x in self.listeners:
            try:
                self._servers.append(await asyncio.start_server(
                    functools.partial(self._accept, listener=x), sock=_socket(x.port)))
            except OSError as exc:
                raise SystemExit(f"netfault: cannot listen on 127.0.0.1:{x.port} for "
                                 f"{x.node} ({x.kind} port): {exc}") from None
        self._servers.append(await asyncio.start_server(
            self._control, "127.0.0.1", self.plan["control_port"]))
        await stop.wait()
        for server in self._servers:
            server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      listener: Listener) -> None:
        x = listener
        ends = {x.node}
        if x.kind == "route":
            source = writer.get_extra_info("peername")[1]
            node = await asyncio.to_thread(dialler, source, x.port, self.plan["pid_files"])
            if node is None:
                print(f"netfault: route from port {source} to {x.node}: dialler unknown",
                      flush=True)
            else:
                ends.add(node)
        cut_ends = frozenset(ends)
        self.connections += 1
        try:
            await self.gate.wait_open(cut_ends)  # a SYN to or from a cut-off node is dropped
            upstream = _socket()
            upstream.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(upstream, ("127.0.0.1", x.upstream))
                up_reader, up_writer = await asyncio.open_connection(sock=upstream)
            except OSError:
                upstream.close()
                return  # the node is down: the client sees its connection close, as with RST
            pumps = [asyncio.ensure_future(self._pump(reader, up_writer, cut_ends)),
                     asyncio.ensure_future(self._pump(up_reader, writer, cut_ends))]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                up_writer.close()
        finally:
            self.connections -= 1
            writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    ends: frozenset[str]) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while True:
                await self.gate.wait_open(ends)  # not reading: the sender's window fills
                data = await reader.read(_CHUNK)
                if not data:
                    return
                await self.gate.wait_open(ends)  # cut while we read: hold these bytes too
                writer.write(data)
                await writer.drain()

    async def _control(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline() or b"{}")
            known = {x.node for x in self.listeners}
            cut = set(self.gate.cut)
            if "partitioned" in request:
                cut = set(request["partitioned"])
            cut = (cut | set(request.get("cut", []))) - set(request.get("heal", []))
            if cut != self.gate.cut and not cut - known:  # unknown names change nothing
                write_state(self.state_dir, cut)
                await self.gate.set(cut)
                print(f"netfault: partitioned {sorted(cut) or 'none'}", flush=True)
            reply = {"partitioned": sorted(self.gate.cut), "connections": self.connections}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (OSError, ValueError) as exc:
            print(f"netfault: bad control request: {exc}", flush=True)
        finally:
            writer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The network-fault proxy of a NATS cluster.")
    parser.add_argument("--plan", required=True, help=f"the {PLAN_FILE} of the cluster")
    args = parser.parse_args(argv)
    plan_path = Path(args.plan)
    proxy = Proxy(json.loads(plan_path.read_text()), plan_path.parent)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        serving = asyncio.ensure_future(proxy.serve(stop))
        while not proxy._servers or len(proxy._servers) <= len(proxy.listeners):
            if serving.done():
                serving.result()  # raises the bind error
            await asyncio.sleep(0.01)
        (plan_path.parent / PID_FILE).write_text(str(os.getpid()))  # ready: every port listens
        print(f"netfault: serving {len(proxy.listeners)} ports", flush=True)
        await serving

    try:
        asyncio.run(run())
    finally:
        with contextlib.suppress(OSError):
            if (plan_path.parent / PID_FILE).read_text().strip() == str(os.getpid()):
                (plan_path.parent / PID_FILE).unlink()


if __name__ == "__main__":
    main()
