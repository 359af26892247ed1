"""``lims-harvest``: init, run (a service), once (cron / scheduled task), status."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from lims_harvester import __version__, client
from lims_harvester.agent import Harvester
from lims_harvester.config import KINDS, Config, ConfigError, load, render_template
from lims_harvester.logs import log, setup
from lims_harvester.state import AlreadyRunning, State, single_instance

DEFAULT_CONFIG = "lims-harvest.toml"
EXIT_CONFIG, EXIT_RUNNING, EXIT_OFFLINE, EXIT_QUEUED = 2, 3, 4, 5


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("LIMS_HARVEST_CONFIG") or DEFAULT_CONFIG)


def _client(config: Config) -> client.Client:
    return client.Client(
        config.server,
        config.token,
        timeout=config.timeout_seconds,
        verify=config.verify_tls,
        rate=config.max_upload_bytes_per_second,
    )


def _logs(args: argparse.Namespace) -> bool:
    """Set up logging; True when a progress bar may be drawn (a terminal, readable logs)."""
    fmt = args.log_format
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    setup(json_lines=fmt == "json", level=args.log_level)
    return fmt == "text" and sys.stderr.isatty()


def cmd_init(args: argparse.Namespace) -> int:
    path = _config_path(args)
    if path.exists() and not args.force:
        print(f"{path} exists (--force to overwrite)", file=sys.stderr)
        return EXIT_CONFIG
    if args.kind and args.kind not in KINDS:
        print(f"--kind: one of {', '.join(KINDS)}", file=sys.stderr)
        return EXIT_CONFIG
    text = render_template(
        server=args.server,
        token=args.token,
        folder=str(Path(args.folder).expanduser().absolute()),
        patterns=args.pattern or ["*"],
        kind=args.kind,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    try:
        config = load(path)
    except ConfigError as exc:
        print(f"the written configuration is wrong: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"wrote {path}")
    if not config.folders[0].path.is_dir():
        print(f"note: {config.folders[0].path} does not exist (yet)")
    if args.no_check:
        return 0
    api = _client(config)
    try:
        api.check(client.EMPTY_SHA256)
    except client.Unauthorized as exc:
        print(f"the server refuses the token: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except client.Offline as exc:
        print(f"the server cannot be reached now ({exc}); files will queue", file=sys.stderr)
        return 0
    finally:
        api.close()
    print(f"the server {config.server} accepts the token; start with: lims-harvest run")
    return 0


def _harvester(args: argparse.Namespace) -> tuple[Config, State, Harvester, bool]:
    config = load(_config_path(args))
    progress = _logs(args)
    state = State(config.state_file)
    return config, state, Harvester(config, state, _client(config), progress=progress), progress


def cmd_run(args: argparse.Namespace, *, once: bool = False) -> int:
    try:
        config, state, harvester, _ = _harvester(args)
    except ConfigError as exc:
        print(f"configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        with single_instance(config.state_file):

            def stop(signum: int, _frame: Any) -> None:
                log.info("stopping", extra={"event": "stop", "status": signum})
                harvester.stop.set()
                harvester.wake.set()

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            if hasattr(signal, "SIGBREAK"):  # Windows console Ctrl-Break, NSSM's stop
                signal.signal(signal.SIGBREAK, stop)
            empty = harvester.run(watch=not once, until_idle_s=(args.drain if once else None))
            offline = harvester.offline_for() > 0
    except AlreadyRunning as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_RUNNING
    finally:
        harvester.api.close()
        state.close()
    if once and offline:
        return EXIT_OFFLINE
    if once and args.drain and not empty:
        return EXIT_QUEUED
    return 0


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    ago = time.time() - ts
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    return f"{stamp} ({ago:.0f} s ago)" if ago < 120 else f"{stamp} ({ago / 60:.0f} min ago)"


def cmd_status(args: argparse.Namespace) -> int:
    try:
        config = load(_config_path(args))
    except ConfigError as exc:
        print(f"configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not config.state_file.exists():
        print(f"no state file yet ({config.state_file}): lims-harvest has not run")
        return 0
    state = State(config.state_file)
    try:
        info = state.summary(errors=args.errors)
    finally:
        state.close()
    info["server"] = config.server
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    files = info["files"]
    print(f"server        {config.server}")
    print(f"state file    {info['state_file']}")
    print(
        f"queue         {info['queue']} (waiting to settle {files.get('waiting', 0)}, "
        f"queued {files.get('queued', 0) + files.get('sending', 0)})"
    )
    print(
        f"files         sent {files.get('sent', 0)}, refused {files.get('refused', 0)}, "
        f"gone {files.get('gone', 0)}"
    )
    sends = ", ".join(f"{k} {v}" for k, v in sorted(info["sends"].items())) or "none"
    print(f"sends         {sends}")
    print(f"last success  {_when(info['last_success_at'])} {info['last_success_path'] or ''}")
    print(f"last contact  {_when(info['last_contact_at'])}")
    if info["offline_since"]:
        print(f"OFFLINE since {_when(info['offline_since'])}")
    print("recent errors" + ("  none" if not info["recent_errors"] else ""))
    for err in info["recent_errors"]:
        print(f"  {_when(err['at'])}  {err['path'] or '-'}: {err['message']}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="lims-harvest",
        description="Send instrument files from watched folders to the LIMS, each version once.",
    )
    top.add_argument("--version", action="version", version=f"lims-harvest {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            help=f"TOML file (default: $LIMS_HARVEST_CONFIG or ./{DEFAULT_CONFIG})",
        )

    def logging_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--log-format", choices=("auto", "json", "text"), default="auto")
        p.add_argument("--log-level", default="INFO")

    p = sub.add_parser("init", help="write a configuration and check the token")
    common(p)
    p.add_argument("--server", required=True, help="e.g. https://lims.example.org")
    p.add_argument("--token", required=True, help="an instrument token")
    p.add_argument("--folder", required=True, help="the folder the instrument writes into")
    p.add_argument("--pattern", action="append", help="file pattern, e.g. '*.mpr' (repeat)")
    p.add_argument("--kind", help=f"one of {', '.join(KINDS)} (default: detected)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--no-check", action="store_true", help="do not call the server")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="watch and send until stopped (the service)")
    common(p)
    logging_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("once", help="one scan and send, then exit (cron, a scheduled task)")
    common(p)
    logging_args(p)
    p.add_argument(
        "--drain",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep going up to this long until nothing is waiting or queued",
    )
    p.set_defaults(func=lambda a: cmd_run(a, once=True))

    p = sub.add_parser("status", help="queue, last success, recent errors")
    common(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--errors", type=int, default=10, help="how many recent errors")
    p.set_defaults(func=cmd_status)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
