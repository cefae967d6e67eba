"""CI: a new user's first hour, followed literally, from a built wheel in a clean directory.

1. Build the wheel and install it with the base dependencies only (no extras) into a fresh venv.
2. In an empty directory, run `evsite examples`, then every command of README's "Using it" block and of
   each ```sh block in docs/quickstart-charger.md, as written. `evsite serve …` runs in the background
   until its ports answer (and is stopped with SIGTERM at the end of its document); `evsite sim …` without
   `--duration` runs until a simulated car charges (it fails if the server refuses it).
3. `evsite demo --duration 20`.
4. No file was written inside the installed package.

Ports 8000/9000 are the README's; when something else holds them, free ports are put in their place
and a note is printed. Usage: python .ci/first_hour.py [--keep]  (about 2-3 minutes; pip uses its cache).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LONG_RUNNING = ("evsite serve", "evsite sim")


def sh_blocks(markdown: Path, heading: str | None = None) -> list[list[str]]:
    """The commands of each ```sh block (after `heading`, up to the next heading of its level), comments dropped."""
    text = markdown.read_text(encoding="utf-8")
    if heading is not None:
        start = text.index(heading + "\n")
        level = heading.split(" ", 1)[0]
        end = text.find("\n" + level + " ", start + len(heading))
        text = text[start : end if end != -1 else len(text)]
    blocks = []
    for body in re.findall(r"^```sh\n(.*?)^```", text, flags=re.M | re.S):
        joined = re.sub(r"\\\n\s*", " ", body)
        lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in joined.splitlines()]
        blocks.append([line for line in lines if line and not line.startswith("#")])
    return blocks


def port_busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"first-hour: the server exited ({proc.returncode}) before port {port} opened")
        if port_busy(port):
            return
        time.sleep(0.2)
    raise SystemExit(f"first-hour: port {port} did not open in {timeout:g} s")


class Run:
    def __init__(self, venv: Path, work: Path) -> None:
        self.env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "100"}
        self.env.pop("PYTHONPATH", None)
        self.work = work
        self.ports = {8000: 8000, 9000: 9000}
        self.server: subprocess.Popen[str] | None = None

    def ported(self, line: str) -> str:
        for default in (8000, 9000):
            if self.ports[default] == default and port_busy(default) and self.server is None:
                self.ports[default] = free_port()
                print(f"first-hour: port {default} is in use here; using {self.ports[default]} instead")
        for default, port in self.ports.items():
            line = re.sub(rf"(?<=:){default}\b", str(port), line)
        if line.startswith(("evsite serve", "evsite demo")):
            line += f" --api-port {self.ports[8000]} --ocpp-port {self.ports[9000]}"
        return line

    def line(self, line: str) -> None:
        if line.startswith("pip install"):
            print(f"first-hour: $ {line}  (done above, from the built wheel)")
            return
        line = self.ported(line)
        print(f"first-hour: $ {line}", flush=True)
        if line.startswith("evsite serve"):
            self.stop_server()
            self.server = subprocess.Popen(
                ["bash", "-c", "exec " + line], cwd=self.work, env=self.env, text=True,
                stdout=open(self.work / "serve.log", "a"), stderr=subprocess.STDOUT,  # noqa: SIM115
            )  # fmt: skip
            wait_port(self.ports[9000], self.server)
            if "--api-port 0" not in line:
                wait_port(self.ports[8000], self.server)
        elif line.startswith("evsite sim") and "--duration" not in line:
            self.sim_until_charging(line)
        else:
            subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=self.work, env=self.env, check=True,
                           timeout=300)  # fmt: skip

    def sim_until_charging(self, line: str, timeout: float = 120.0) -> None:
        proc = subprocess.Popen(["bash", "-c", "exec " + line], cwd=self.work, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        try:
            for out in proc.stdout:
                print("  " + out.rstrip(), flush=True)
                if "not connected" in out:
                    raise SystemExit("first-hour: the simulated chargers could not connect")
                if re.search(r"charging [1-9]", out):
                    return
                if time.monotonic() > deadline:
                    break
            raise SystemExit(f"first-hour: no simulated car charged within {timeout:g} s")
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)

    def stop_server(self) -> None:
        if self.server is None:
            return
        self.server.send_signal(signal.SIGTERM)
        code = self.server.wait(60)
        self.server = None
        log = (self.work / "serve.log").read_text(encoding="utf-8")
        if code != 0 or "Traceback" in log:
            print(log)
            raise SystemExit(f"first-hour: serve exited with {code} or printed a traceback")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="evsite-first-hour-"))
    venv, work = tmp / "venv", tmp / "work"
    work.mkdir()
    started = time.monotonic()
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp / "dist"), str(ROOT)],
                   check=True)  # fmt: skip
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheel = next((tmp / "dist").glob("evsite-*.whl"))
    subprocess.run([*pip, "install", str(wheel)], check=True)  # the base install: no extras
    print(f"first-hour: installed {wheel.name} (base) in {time.monotonic() - started:.0f} s", flush=True)

    run = Run(venv, work)
    try:
        run.line("evsite examples")
        for doc, heading in ((ROOT / "README.md", "## Using it"), (ROOT / "docs" / "quickstart-charger.md", None)):
            for block in sh_blocks(doc, heading):  # a server started in one block serves the next ones
                for line in block:
                    run.line(line)
            run.stop_server()
        run.line("evsite demo --duration 20")
    finally:
        run.stop_server()
    site_packages = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import evsite, pathlib; print(pathlib.Path(evsite.__file__).parent)"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    written = [p for p in Path(site_packages).rglob("*") if p.suffix in (".db", ".db-wal", ".db-shm", ".html")
               and "static" not in p.parts and "templates" not in p.parts]  # fmt: skip
    if written:
        raise SystemExit(f"first-hour: files written inside the installed package: {written}")
    print(f"first-hour: passed in {time.monotonic() - started:.0f} s ({tmp})")
    if "--keep" not in sys.argv:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()
