"""An S3 API server (moto) that answers every request after a fixed delay, as a remote object store does.

    python benchmarks/slow_s3.py --latency-ms 20      # prints its URL, serves until killed

Run as its own process, so that serving requests costs the benchmark's driver no CPU. The delay is added
before moto handles the request, so it models the round trip and time to first byte of a real store.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any, Callable, Iterable

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    delay = args.latency_ms / 1000

    def delayed(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        time.sleep(delay)
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, delayed, threaded=True, request_handler=MotoRequestHandler)
    host, port = server.server_address[:2]
    print(f"http://{host}:{port}", flush=True)
    server.serve_forever()


def start(latency_ms: float) -> tuple[subprocess.Popen, str]:
    """The server in a child process, and its URL once it listens."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


if __name__ == "__main__":
    main()
