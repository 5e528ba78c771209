#!/usr/bin/env python3
"""Run a real QEMU live migration on loopback and keep the source's trace.

    migrate.py --qemu {7.2,10.0,usdt-10.0,usdt-eraC} --scenario NAME --out TRACEFILE
               [--msg-timestamp] [--facts FACTS.json] [--verbose]
               [--trace-glob PATTERN]... [--simpletrace FILE] [--go-file PATH]

A source and a destination qemu-system-x86_64 (TCG, no devices) boot the
tiny test guest (Tests/qemu/guest, built into <repo>/.cache/guest). The
source is traced with the log backend into TRACEFILE (-D):
migrate_transferred, migrate_pending*, migrate_set_state,
migration_thread_low_pending, migration_bitmap_sync*. Both QEMUs are
driven over QMP (unix sockets in a temporary directory).

QEMU 7.2 is `qemu-system-x86_64` from PATH (Debian bookworm); QEMU 10.0 is
<repo>/.cache/qemu-10.0 (made by scripts/setup). usdt-10.0 and usdt-eraC are
the QEMUs scripts/build-qemu-usdt builds (<repo>/.cache/qemu-usdt: Debian's
10.0.13 source with the dtrace, log and simple backends; eraC with QEMU 11.1's
switchover arithmetic patched in).

--trace-glob replaces the list of traced events with `-trace enable=PATTERN`;
--simpletrace FILE adds the simple backend's binary file (`file=FILE`, usdt
builds only). --go-file makes the driver print `source-pid N` once the source
QEMU is up and wait (at most 60 s) until PATH exists before going on, so that
a tracer can attach to the source first.

--facts writes a JSON sidecar with what the driver did and when (wall-clock
epoch seconds): QEMU version, every parameter set with migrate-set-parameters,
SIGSTOP/SIGCONT times, the final query-migrate, ram.transferred, and whether
-msg timestamp=on was used.

Every run ends both QEMUs (quit, then SIGKILL) even on error, timeout or
SIGINT/SIGTERM; the QEMUs also get SIGKILL if this driver dies
(PR_SET_PDEATHSIG). Exit status: 0 when the scenario ended as expected,
1 otherwise (the trace and facts are still written), 2 on usage errors.

Python 3 standard library only.
"""

import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
CACHE = os.path.join(REPO, ".cache")
GUEST_SRC = os.path.join(HERE, "guest", "guest.S")
GUEST_BUILD = os.path.join(HERE, "guest", "build.sh")
GUEST_DIR = os.path.join(CACHE, "guest")
GUEST_ELF = os.path.join(GUEST_DIR, "guest.elf")
Q10_ROOT = os.path.join(CACHE, "qemu-10.0")
USDT_ROOT = os.path.join(CACHE, "qemu-usdt")
QEMUS = ("7.2", "10.0", "usdt-10.0", "usdt-eraC")

MiB = 1024 * 1024

TRACE_EVENTS = [
    "migrate_transferred",
    "migrate_pending*",
    "migrate_set_state",
    "migration_thread_low_pending",
    "migration_bitmap_sync*",
]

# Scenario table. Times are seconds after the `migrate` command.
#   ram       guest RAM (MiB)
#   append    guest command line (see Tests/qemu/guest/guest.S)
#   params    migrate-set-parameters before `migrate`
#   steps     [(t, action, arg)]: ("set", {params}), ("stop", seconds) = SIGSTOP
#             the source for that long then SIGCONT, ("cancel", None)
#   limit     hard bound on the migration phase (s); reaching it cancels
#   expect    final status the scenario is meant to reach
#   only      QEMU versions the scenario is for
SCENARIOS = {
    "converge": dict(
        ram=128, append="span=64 dirty=1 delay=100000",
        params={"max-bandwidth": 32 * MiB},
        steps=[], limit=8.0, expect="completed"),
    "nonconverge": dict(
        ram=128, append="span=48 dirty=4096 delay=0",
        params={"max-bandwidth": 16 * MiB, "downtime-limit": 20},
        steps=[(12.5, "cancel", None)], limit=14.0, expect="cancelled"),
    "stall": dict(
        ram=128, append="span=56 dirty=1 delay=200000",
        params={"max-bandwidth": 16 * MiB},
        steps=[(1.5, "stop", 1.5)], limit=10.0, expect="completed"),
    "bandwidth-change": dict(
        ram=128, append="span=72 dirty=1 delay=400000",
        params={"max-bandwidth": 24 * MiB},
        steps=[(2.0, "set", {"max-bandwidth": 8 * MiB})], limit=16.0,
        expect="completed"),
    "downtime-change": dict(
        ram=128, append="span=64 dirty=1 delay=200000",
        params={"max-bandwidth": 16 * MiB, "downtime-limit": 300},
        steps=[(2.0, "set", {"downtime-limit": 100})], limit=16.0,
        expect="completed"),
    "switchover-bw": dict(
        ram=128, append="span=64 dirty=1 delay=200000",
        # first a sane value (= max-bandwidth, about the measured rate),
        # then 4x the measured rate: the threshold jumps 4x
        params={"max-bandwidth": 16 * MiB,
                "avail-switchover-bandwidth": 16 * MiB},
        steps=[(2.0, "set", {"avail-switchover-bandwidth": 64 * MiB})],
        limit=9.0, expect="completed", only=("10.0",)),
    # nonconverge, rescued: downtime-limit raised from 20 to 4000 ms at t+8 s
    "rescue": dict(
        ram=128, append="span=48 dirty=4096 delay=0",
        params={"max-bandwidth": 16 * MiB, "downtime-limit": 20},
        steps=[(8.0, "set", {"downtime-limit": 4000})], limit=16.0,
        expect="completed"),
    # an idle guest on an unthrottled link: done before the first 100 ms window
    "idle": dict(
        ram=32, append="span=1 dirty=1 delay=1000000",
        params={"max-bandwidth": 16 * 1024 * MiB},
        steps=[], limit=5.0, expect="completed"),
    "demo": dict(
        ram=192, append="span=128 dirty=1 delay=200000",
        params={"max-bandwidth": 24 * MiB},
        steps=[(2.5, "set", {"max-bandwidth": 8 * MiB}),
               (5.0, "set", {"max-bandwidth": 64 * MiB})],
        limit=10.0, expect="completed"),
}

FINAL = ("completed", "failed", "cancelled")


class Fail(Exception):
    pass


def log(args, msg):
    if args.verbose:
        sys.stderr.write("migrate.py: %.3f %s\n" % (time.time(), msg))


# ------------------------------------------------------------------ QMP
class QMP:
    """Minimal QMP client over a unix socket; every wait is bounded."""

    def __init__(self, path, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise Fail("cannot connect to QMP socket %s" % path)
                time.sleep(0.05)
        self.buf = b""
        self.events = []
        self.next_id = 0
        greeting = self._read(deadline)
        if "QMP" not in greeting:
            raise Fail("unexpected QMP greeting: %r" % greeting)
        self.version = greeting["QMP"]["version"]
        self.cmd("qmp_capabilities")

    def _read(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("QMP read timed out")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise Fail("QMP read timed out")
            if not data:
                raise Fail("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, timeout=10.0, **arguments):
        return self.execute(name, arguments, timeout)

    def execute(self, name, arguments, timeout=10.0):
        """One command with its arguments as a dict (an argument may be called `name`)."""
        self.next_id += 1
        req = {"execute": name, "id": self.next_id}
        if arguments:
            req["arguments"] = arguments
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read(deadline)
            if "event" in msg:
                self.events.append(msg)
                continue
            if msg.get("id") != self.next_id:
                continue
            if "error" in msg:
                raise Fail("QMP %s %s failed: %s" % (name, arguments, msg["error"]))
            return msg.get("return")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ------------------------------------------------------------- helpers
def set_pdeathsig():
    """preexec_fn: the QEMU gets SIGKILL when this driver dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def base_version(qemu):
    """The QEMU release a --qemu choice runs (the usdt builds are 10.0.13)."""
    return "10.0" if qemu.startswith("usdt-") else qemu


def find_qemu(qemu):
    ver = base_version(qemu)
    if qemu.startswith("usdt-"):
        exe = os.path.join(USDT_ROOT, qemu[len("usdt-"):], "qemu-system-x86_64")
        if not os.access(exe, os.X_OK):
            raise Fail("%s not found; run scripts/build-qemu-usdt as root (`make test` does)" % exe)
        extra = ["-L", os.path.join(Q10_ROOT, "usr", "share", "qemu"),
                 "-L", os.path.join(Q10_ROOT, "usr", "share", "seabios")]
    elif ver == "7.2":
        exe = shutil.which("qemu-system-x86_64")
        if not exe:
            raise Fail("qemu-system-x86_64 (QEMU 7.2) not found; run scripts/setup")
        extra = []
    else:
        exe = os.path.join(Q10_ROOT, "usr", "bin", "qemu-system-x86_64")
        if not os.access(exe, os.X_OK):
            raise Fail("QEMU 10.0 not found at %s; run scripts/setup (as root)" % exe)
        extra = ["-L", os.path.join(Q10_ROOT, "usr", "share", "qemu"),
                 "-L", os.path.join(Q10_ROOT, "usr", "share", "seabios")]
    out = subprocess.run([exe, "--version"], capture_output=True, text=True,
                         timeout=10).stdout
    first = out.splitlines()[0] if out else ""
    if ("version %s." % ver) not in first:
        raise Fail("%s is not QEMU %s (%r); run scripts/setup" % (exe, ver, first))
    return exe, extra, first


def build_guest():
    if (os.path.exists(GUEST_ELF)
            and os.path.getmtime(GUEST_ELF) >= os.path.getmtime(GUEST_SRC)
            and os.path.getmtime(GUEST_ELF) >= os.path.getmtime(GUEST_BUILD)):
        return GUEST_ELF
    r = subprocess.run(["sh", GUEST_BUILD, GUEST_DIR], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise Fail("building the guest failed (needs binutils):\n%s%s"
                   % (r.stdout, r.stderr))
    return GUEST_ELF


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Runner:
    def __init__(self, args):
        self.args = args
        self.procs = []
        self.qmps = []
        self.tmp = tempfile.mkdtemp(prefix="migtrace-mig-")
        self.facts = {}

    def spawn(self, name, cmd):
        log(self.args, "spawn %s: %s" % (name, " ".join(cmd)))
        errf = open(os.path.join(self.tmp, name + ".stderr"), "w+")
        # cwd: the simple backend of the usdt builds may write trace-<pid> there
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             stdout=errf, stderr=subprocess.STDOUT,
                             preexec_fn=set_pdeathsig, cwd=self.tmp)
        p.migtrace_name = name
        p.migtrace_err = errf
        self.procs.append(p)
        return p

    def stderr_of(self, p):
        try:
            p.migtrace_err.flush()
            p.migtrace_err.seek(0)
            return p.migtrace_err.read()[-2000:]
        except Exception:
            return ""

    def check_alive(self, which=None):
        for p in self.procs:
            if which and p.migtrace_name != which:
                continue
            if p.poll() is not None:
                raise Fail("%s QEMU exited (rc %s): %s"
                           % (p.migtrace_name, p.returncode, self.stderr_of(p)))

    def cleanup(self):
        for p in self.procs:
            try:
                os.kill(p.pid, signal.SIGCONT)  # a stopped QEMU cannot quit
            except OSError:
                pass
        for q in self.qmps:
            try:
                q.cmd("quit", timeout=2.0)
            except Exception:
                pass
        deadline = time.monotonic() + 3.0
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    sys.stderr.write("migrate.py: pid %d did not die\n" % p.pid)
        for q in self.qmps:
            q.close()
        for p in self.procs:
            try:
                p.migtrace_err.close()
            except Exception:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------ run
    def run(self):
        a = self.args
        sc = dict(SCENARIOS[a.scenario])
        if a.append is not None:
            sc["append"] = a.append
        if a.ram is not None:
            sc["ram"] = a.ram
        if base_version(a.qemu) not in sc.get("only", ("7.2", "10.0")):
            raise Fail("scenario %s is only for QEMU %s"
                       % (a.scenario, "/".join(sc["only"])))
        exe, extra, verline = find_qemu(a.qemu)
        guest = build_guest()
        out = os.path.abspath(a.out)
        if os.path.exists(out):
            os.unlink(out)
        simple = os.path.abspath(a.simpletrace) if a.simpletrace else None
        if simple and os.path.exists(simple):
            os.unlink(simple)
        F = self.facts
        F.update(scenario=a.scenario, qemu=a.qemu, qemu_binary=exe,
                 qemu_version_line=verline, msg_timestamp=bool(a.msg_timestamp),
                 guest_ram_mb=sc["ram"], guest_append=sc["append"],
                 trace_events=a.trace_glob or TRACE_EVENTS, expected_status=sc["expect"],
                 parameter_changes=[], signals=[], qmp_events=[])

        common = [exe] + extra + [
            "-machine", "pc,accel=tcg", "-m", str(sc["ram"]), "-nodefaults",
            "-display", "none", "-serial", "none", "-monitor", "none",
            "-kernel", guest, "-append", sc["append"]]
        dst_sock = os.path.join(self.tmp, "dst.qmp")
        src_sock = os.path.join(self.tmp, "src.qmp")
        dst_cmd = common + ["-qmp", "unix:%s,server=on,wait=off" % dst_sock,
                            "-incoming", "defer"]
        src_cmd = common + ["-qmp", "unix:%s,server=on,wait=off" % src_sock]
        if a.no_trace:
            pass  # events are turned on at run time (--qmp-after-go), as on a running QEMU
        elif a.trace_glob:
            for i, ev in enumerate(a.trace_glob):
                opt = "enable=" + ev
                if i == 0 and simple:
                    opt += ",file=" + simple
                src_cmd += ["-trace", opt]
        else:
            for ev in TRACE_EVENTS:
                src_cmd += ["-trace", ev]
            if simple:
                src_cmd += ["-trace", "file=" + simple]
        if simple:
            F["simpletrace_file"] = simple
        src_cmd += ["-D", out]
        if a.msg_timestamp:
            src_cmd += ["-msg", "timestamp=on"]
        F["source_command_line"] = src_cmd

        dst = self.spawn("destination", dst_cmd)
        dq = QMP(dst_sock)
        self.qmps.append(dq)
        src = self.spawn("source", src_cmd)
        sq = QMP(src_sock)
        self.qmps.append(sq)
        F["qemu_version"] = "%d.%d.%d" % (sq.version["qemu"]["major"],
                                          sq.version["qemu"]["minor"],
                                          sq.version["qemu"]["micro"])
        F["qemu_package"] = sq.version.get("package", "").strip()
        F["source_pid"] = src.pid
        F["destination_pid"] = dst.pid
        if a.go_file:
            sys.stdout.write("source-pid %d\n" % src.pid)
            sys.stdout.flush()
            deadline = time.monotonic() + 60.0
            while not os.path.exists(a.go_file):
                if time.monotonic() > deadline:
                    raise Fail("%s did not appear within 60 s" % a.go_file)
                self.check_alive()
                time.sleep(0.02)
            log(a, "go file seen")
            if a.qmp_after_go:
                # The user's way on a running QEMU: each QMP command of the file (one JSON object a line).
                sent = []
                with open(a.qmp_after_go) as f:
                    for text in f:
                        if text.strip():
                            req = json.loads(text)
                            try:
                                sq.execute(req["execute"], req.get("arguments", {}))
                            except Fail as e:
                                # An event this QEMU does not have is refused; the others still apply.
                                req["error"] = str(e)
                            sent.append(req)
                F["qmp_after_go"] = sent

        for attempt in range(5):
            port = free_port()
            try:
                dq.cmd("migrate-incoming", uri="tcp:127.0.0.1:%d" % port)
                break
            except Fail:
                if attempt == 4:
                    raise
        F["destination_uri"] = "tcp:127.0.0.1:%d" % port

        # let the guest run and dirty its span once before migrating
        time.sleep(a.warmup)
        self.check_alive()

        if sc["params"]:
            t = time.time()
            sq.cmd("migrate-set-parameters", **sc["params"])
            F["parameter_changes"].append(
                dict(time=t, when="before-migrate", params=sc["params"]))
        F["parameters_initial"] = sq.cmd("query-migrate-parameters")

        t0 = time.time()
        sq.cmd("migrate", uri=F["destination_uri"])
        F["migrate_command_time"] = t0
        log(a, "migrate started")

        steps = sorted(sc["steps"], key=lambda s: s[0])
        last = None
        last_ram = None
        status = None
        limit_hit = False
        while True:
            now = time.time()
            if now - t0 > sc["limit"] + 5.0:
                raise Fail("migration did not end %.1f s after cancel" % (now - t0))
            if steps and now - t0 >= steps[0][0]:
                at, action, arg = steps.pop(0)
                if action == "set":
                    t = time.time()
                    sq.cmd("migrate-set-parameters", **arg)
                    F["parameter_changes"].append(
                        dict(time=t, when="t+%.1fs" % at, params=arg))
                    log(a, "set %s" % arg)
                elif action == "stop":
                    t = time.time()
                    os.kill(src.pid, signal.SIGSTOP)
                    F["signals"].append(dict(time=t, signal="SIGSTOP", pid=src.pid))
                    log(a, "SIGSTOP")
                    time.sleep(arg)
                    t = time.time()
                    os.kill(src.pid, signal.SIGCONT)
                    F["signals"].append(dict(time=t, signal="SIGCONT", pid=src.pid))
                    log(a, "SIGCONT")
                elif action == "cancel":
                    if status not in FINAL:
                        F["cancel_time"] = time.time()
                        sq.cmd("migrate_cancel")
                        log(a, "migrate_cancel")
                continue
            if not limit_hit and now - t0 > sc["limit"]:
                limit_hit = True
                F["limit_cancel_time"] = time.time()
                log(a, "time limit reached, cancelling")
                try:
                    sq.cmd("migrate_cancel")
                except Fail:
                    pass
            # the destination exits by itself after a cancel: watch the source
            self.check_alive("source")
            last = sq.cmd("query-migrate")
            status = last.get("status")
            if "ram" in last:
                last_ram = last
            # QEMU's own expected downtime while the migration runs, to compare migtrace's with
            if status == "active" and "expected-downtime" in last:
                F.setdefault("expected_downtime_samples", []).append(
                    [time.time(), last["expected-downtime"], last.get("ram", {}).get("dirty-sync-count")])
            if status in FINAL:
                break
            time.sleep(0.1)
        F["end_time"] = time.time()
        F["final_query_migrate"] = last
        F["final_status"] = status
        # a cancelled migration reports no "ram": keep the last one that did
        if last_ram is not None and last_ram is not last:
            F["last_query_migrate_with_ram"] = last_ram
        F["ram_transferred"] = (last_ram or {}).get("ram", {}).get("transferred")
        F["ram_transferred_from_status"] = (last_ram or {}).get("status")
        F["time_limit_hit"] = limit_hit
        F["parameters_final"] = sq.cmd("query-migrate-parameters")
        if status == "completed":
            # destination should be running the guest now
            dstat = None
            for _ in range(50):
                dstat = dq.cmd("query-status").get("status")
                if dstat == "running":
                    break
                time.sleep(0.1)
            F["destination_status"] = dstat
        F["qmp_events"] = [e for e in sq.events
                           if e.get("event", "").startswith("MIGRATION")]
        return status == sc["expect"] and not limit_hit


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--qemu", choices=QEMUS, required=True)
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    ap.add_argument("--out", required=True, help="trace file written by the source (-D)")
    ap.add_argument("--msg-timestamp", action="store_true",
                    help="run the source with -msg timestamp=on")
    ap.add_argument("--facts", help="write a JSON sidecar here")
    ap.add_argument("--warmup", type=float, default=0.5,
                    help="seconds the guest runs before `migrate` (default 0.5)")
    ap.add_argument("--append", help="tuning aid: override the guest command line")
    ap.add_argument("--ram", type=int, help="tuning aid: override guest RAM (MiB)")
    ap.add_argument("--trace-glob", action="append",
                    help="trace `-trace enable=PATTERN` instead of the default events (repeatable)")
    ap.add_argument("--simpletrace", help="also write the simple backend's file here (usdt builds)")
    ap.add_argument("--go-file", help="print `source-pid N`, then wait for this file before migrating")
    ap.add_argument("--no-trace", action="store_true",
                    help="start the source with -D but no -trace (turn events on with --qmp-after-go)")
    ap.add_argument("--qmp-after-go", metavar="FILE",
                    help="with --go-file: send the QMP commands of FILE (a JSON object a line) to the source once the go file is there")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()
    if args.simpletrace and not args.qemu.startswith("usdt-"):
        ap.error("--simpletrace needs a usdt build (the Debian QEMUs have the log backend only)")

    def on_signal(signum, frame):
        raise Fail("interrupted by signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    r = Runner(args)
    ok = False
    err = None
    started = time.monotonic()
    try:
        ok = r.run()
    except Fail as e:
        err = str(e)
    except Exception as e:  # noqa: keep cleanup and the facts on any error
        err = "%s: %s" % (type(e).__name__, e)
    finally:
        r.cleanup()
    r.facts["driver_seconds"] = round(time.monotonic() - started, 3)
    if err:
        r.facts["error"] = err
        sys.stderr.write("migrate.py: error: %s\n" % err)
    if os.path.exists(args.out):
        with open(args.out, "rb") as f:
            r.facts["migrate_transferred_lines"] = f.read().count(b"migrate_transferred ")
    if args.facts:
        with open(args.facts, "w") as f:
            json.dump(r.facts, f, indent=2, sort_keys=True)
            f.write("\n")
    if not err and not ok:
        sys.stderr.write("migrate.py: scenario %s ended with status %s (expected %s)\n"
                         % (args.scenario, r.facts.get("final_status"),
                            r.facts.get("expected_status")))
    if args.verbose or not ok:
        sys.stderr.write("migrate.py: %s on QEMU %s: %s, %s migrate_transferred lines, %.1f s\n"
                         % (args.scenario, args.qemu, r.facts.get("final_status"),
                            r.facts.get("migrate_transferred_lines"),
                            r.facts["driver_seconds"]))
    return 0 if ok and not err else 1


if __name__ == "__main__":
    sys.exit(main())
