"""`soraq`: migrate · api · worker · beat · sandbox · dev."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
from datetime import timedelta
from pathlib import Path

from catalogue.accounts import accounts
from core.auth_events import announce
from core.config import (
    API_CONNECTION_LIMIT,
    ARCHIVE_QUEUE,
    JOBS_QUEUE,
    QUEUES,
    WEBHOOK_QUEUE,
    Settings,
    get_settings,
)
from core.logs import setup_logging
from core.metrics import prepare_multiprocess_dir
from core.private import private_folder, write_private
from devstack.stack import LocalStack, sandbox_env, wait_http, wait_port
from models.migrate import migrate

log = logging.getLogger("soraq")


def clients_command(args: argparse.Namespace) -> int:
    from models.db import session_scope
    from soraq import client_admin as clients

    with session_scope() as session:
        try:
            if args.action == "create":
                created = clients.create(
                    session,
                    args.name,
                    max_active_jobs=args.max_active_jobs,
                    weight=args.weight,
                    create_rate=args.create_rate,
                    retention_days=args.retention_days,
                    daily_credits=clients.parse_budget("--daily-credits", args.daily_credits),
                    monthly_credits=clients.parse_budget("--monthly-credits", args.monthly_credits),
                    test=args.test,
                )
                print(f"client:          {created.client.name} ({created.client.id})")
                if args.test:
                    print("mode:            test (jobs go to the sandbox; no credits are spent)")
                print(f"API key:         {created.api_key}")
                print(f"webhook secret:  {created.client.webhook_secret}")
                print("Store both now: the API key is not shown again.")
            elif args.action == "set-budget":
                if args.daily_credits is None and args.monthly_credits is None:
                    raise clients.ClientError("give --daily-credits and/or --monthly-credits")
                client = clients.set_budget(
                    session,
                    args.name,
                    daily=clients._KEEP
                    if args.daily_credits is None
                    else clients.parse_budget("--daily-credits", args.daily_credits),
                    monthly=clients._KEEP
                    if args.monthly_credits is None
                    else clients.parse_budget("--monthly-credits", args.monthly_credits),
                )
                announce(get_settings())  # API processes forget the cached budgets now
                print(
                    f"budgets for {client.name}: daily {_cap(client.daily_credits)}, "
                    f"monthly {_cap(client.monthly_credits)} credits (UTC calendar periods)"
                )
            elif args.action == "rotate-key":
                rotated = clients.rotate_key(session, args.name)
                announce(get_settings())
                print(f"new API key for {rotated.client.name}: {rotated.api_key}")
                print("The old key stops working now.")
            elif args.action == "disable":
                clients.set_active(session, args.name, False)
                announce(get_settings())
                print(f"client {args.name} disabled: its key no longer works")
            elif args.action == "rotate-webhook-secret":
                grace = timedelta(hours=args.grace_hours)
                client = clients.rotate_webhook_secret(session, args.name, grace=grace)
                print(f"new webhook secret for {client.name}: {client.webhook_secret}")
                print(
                    f"For {args.grace_hours:g} h deliveries carry signatures with both the old "
                    "and the new secret; switch your receiver within that time."
                )
            else:
                print(
                    f"{'name':<24} {'id':<20} {'key':<12} {'active':<7} {'max jobs':>8} "
                    f"{'daily cr':>9} {'monthly cr':>10}  created"
                )
                for client in clients.all_clients(session):
                    print(
                        f"{client.name:<24} {client.id:<20} {client.key_prefix + '…':<12} "
                        f"{'yes' if client.active else 'no':<7} {client.max_active_jobs:>8} "
                        f"{_cap(client.daily_credits):>9} {_cap(client.monthly_credits):>10}  "
                        f"{client.created_at:%Y-%m-%d %H:%M}"
                    )
        except clients.ClientError as exc:
            print(f"soraq: {exc}", file=sys.stderr)
            return 1
    return 0


def _cap(value: int | None) -> str:
    return "none" if value is None else str(value)


def ensure_demo_client(settings_var_dir: Path) -> str:
    """The dev sandbox's client. Its key lives in var/demo-api-key so that restarts keep it."""
    from models.client import hash_api_key
    from models.db import session_scope
    from soraq import client_admin as clients

    key_file = settings_var_dir / "demo-api-key"
    with session_scope() as session:
        try:
            demo = clients.get(session, "demo")
        except clients.ClientError:
            key = clients.create(session, "demo", max_active_jobs=1000).api_key
        else:
            key = key_file.read_text().strip() if key_file.exists() else ""
            if not demo.active or not key or hash_api_key(key) != demo.key_hash:
                clients.set_active(session, "demo", True)
                key = clients.rotate_key(session, "demo").api_key
    write_private(key_file, key + "\n")
    return key


def disable_demo_client() -> None:
    """With a real Kie key, the demo client (whose key sits in a file) must not spend money."""
    from models.db import session_scope
    from soraq import client_admin as clients

    with session_scope() as session:
        try:
            clients.set_active(session, "demo", False)
        except clients.ClientError:
            pass


def run_api(host: str, port: int) -> None:
    import uvicorn

    trusted = get_settings().trusted_proxies.strip()
    uvicorn.run(
        "api.app:create_app",
        log_config=None,  # uvicorn's loggers go through ours (JSON in production)
        factory=True,
        host=host,
        port=port,
        log_level="info",
        # X-Forwarded-For / -Proto only from the proxies the operator names: anyone else
        # could pick the address the admin throttle counts (uvicorn would trust 127.0.0.1).
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        limit_concurrency=API_CONNECTION_LIMIT,
    )


def run_worker(with_beat: bool | None = None, queues: str | None = None) -> None:
    from core import tracing

    tracing.setup("soraq-worker")  # before worker.tasks makes its engine
    from worker.tasks import celery_app

    settings = get_settings()
    beat = settings.embedded_broker if with_beat is None else with_beat
    args = [
        "worker",
        "--loglevel",
        settings.log_level,
        "--pool",
        settings.worker_pool,
        "--concurrency",
        str(settings.worker_concurrency),
        "--without-mingle",
        "--without-gossip",
        "--queues",
        queues or ",".join(QUEUES),
    ]
    if settings.embedded_broker:
        args.append("--without-heartbeat")  # the file broker has no broadcast to carry them
    if beat:
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        args += ["--beat", "--schedule", str((settings.var_dir / "celerybeat-schedule").resolve())]
    if settings.resolved_log_format == "json" or settings.log_level.lower() != "debug":
        # No banner: every line on stderr is a JSON object in production, and in development
        # `soraq dev` prints its own start-up block (LOG_LEVEL=debug shows the banner).
        args.insert(0, "--quiet")
    if settings.worker_metrics_port:
        from core.metrics import serve_worker_metrics

        serve_worker_metrics(settings.worker_metrics_port)
    celery_app.start(args)


def run_beat() -> None:
    from core import tracing

    tracing.setup("soraq-beat")
    from worker.tasks import celery_app

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    celery_app.start(
        [
            "beat",
            "--loglevel",
            settings.log_level,
            "--schedule",
            str((settings.var_dir / "celerybeat-schedule").resolve()),
        ]
    )


def run_sandbox(host: str, port: int, *, test_mode: bool, settings: Settings) -> int:
    """The stand-in for Kie and imgbb. Under ENVIRONMENT=production only as the target of
    test-mode keys, said with --test-mode: a sandbox by mistake would answer for Kie."""
    if settings.environment == "production" and not test_mode:
        print(
            "soraq sandbox refuses to run under ENVIRONMENT=production: it fakes Kie and "
            "imgbb. For test-mode keys (TEST_MODE_KIE_URL), run `soraq sandbox --test-mode`.",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    uvicorn.run("sandbox.app:create_app", factory=True, host=host, port=port, log_level="warning")
    return 0


def dev_admin_token(settings: Settings) -> str | None:
    """In development without ADMIN_TOKEN: one generated into var/admin-token (kept across
    restarts) so the dashboard opens. Never in production."""
    if settings.environment != "development" or settings.admin_token is not None:
        return None
    path = settings.var_dir / "admin-token"
    if not path.exists():
        private_folder(path.parent)
        write_private(path, secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def dev(host: str, port: int, sandbox_port: int) -> int:
    """Migrate, then run the sandbox (when no Kie key is set), the API and the workers together
    until Ctrl-C: a thin interactive wrapper over the local stack (devstack.stack)."""
    settings = get_settings()
    quiet = settings.log_level.lower() != "debug"
    if quiet:
        logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin lines
    migrate()
    prepare_multiprocess_dir(settings.var_dir / "metrics")  # before the children start
    (settings.var_dir / "logs").mkdir(parents=True, exist_ok=True)
    api_url = f"http://{host}:{port}"
    env = dict(os.environ)
    stack = LocalStack(api_url, "", env, settings.var_dir, {})
    sandbox_url = None
    if settings.kie_api_key is None:
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        stack.sandbox_url = sandbox_url
        given_public_url = env.get("PUBLIC_URL")
        control_path = settings.var_dir / "sandbox-control-token"
        if not control_path.exists():
            write_private(control_path, secrets.token_urlsafe(24) + "\n")
        env.update(sandbox_env(sandbox_url, api_url, control_path.read_text().strip()))
        if given_public_url:
            env["PUBLIC_URL"] = given_public_url  # e.g. a tunnel, for callbacks from afar
        log.warning(
            "KIE_API_KEY is not set: using the bundled sandbox at %s for Kie and imgbb "
            "(fake videos, no cost). Set KIE_API_KEY and IMGBB_API_KEY for real ones.",
            sandbox_url,
        )
        stack.start("sandbox", "sandbox", "--port", str(sandbox_port), to_file=False)
        wait_port(sandbox_port)
        demo_key = ensure_demo_client(settings.var_dir)
    else:
        disable_demo_client()
        demo_key = None
    token = dev_admin_token(settings)
    if token is not None:
        env["ADMIN_TOKEN"] = token
    stopping = [False]

    def stop(*_: object) -> None:
        stopping[0] = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    stack.start_soraq(port, host=host, to_file=False)
    try:
        wait_http(f"{api_url}/healthz", timeout=60)
    except RuntimeError:
        stopping[0] = True
    else:
        print(_start_up_block(settings, api_url, token, demo_key, sandbox_url), flush=True)
    return stack.supervise(stopping)


def _start_up_block(
    settings: Settings,
    api_url: str,
    token: str | None,
    demo_key: str | None,
    sandbox_url: str | None,
) -> str:
    var = settings.var_dir
    if token is not None:
        dashboard = f"{api_url}/admin   admin token: {token}  ({var}/admin-token)"
    elif settings.admin_token is not None:
        dashboard = f"{api_url}/admin   log in with ADMIN_TOKEN"
    else:
        dashboard = "closed (set ADMIN_TOKEN to open it)"
    kie = (
        f"the bundled sandbox at {sandbox_url} (fake videos, no cost)"
        if sandbox_url
        else f"real Kie at {settings.kie_base_url} (every job costs credits)"
    )
    lines = [
        "",
        "soraq is running — Ctrl-C stops everything",
        f"  API        {api_url}   docs: {api_url}/docs",
        f"  Dashboard  {dashboard}",
    ]
    if demo_key:
        lines.append(f"  Demo key   {demo_key}  ({var}/demo-api-key)")
        lines.append(
            f"  Try        curl -H 'Authorization: Bearer {demo_key}' "
            f"-d '{{\"prompt\": \"A cute cat\"}}' -H 'Content-Type: application/json' "
            f"{api_url}/jobs"
        )
    lines += [f"  Kie        {kie}", ""]
    return "\n".join(lines)


def parse_age(text: str) -> timedelta:
    """ "90d", "12h", "30m", "45s" → a timedelta."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isascii() or not number.isdigit() or len(number) > 6:
        raise argparse.ArgumentTypeError(f"an age looks like 90d, 12h, 30m or 45s, not {text!r}")
    return timedelta(**{units[unit]: int(number)})


def purge_jobs(older_than: timedelta, client_name: str | None) -> int:
    """Erase the data of every finished job that ended before now − `older_than` (one
    client's, or all), in rounds; print how many."""
    from models.base import utcnow
    from models.db import session_scope
    from models.erasure import erase_finished_before
    from soraq import client_admin as clients

    total = 0
    with session_scope() as session:
        client_id = None
        if client_name is not None:
            try:
                client_id = clients.get(session, client_name).id
            except clients.ClientError as exc:
                print(exc, file=sys.stderr)
                return 1
        now = utcnow()
        while True:
            erased = erase_finished_before(
                session, now - older_than, now, by="soraq jobs purge", client_id=client_id
            )
            total += erased
            if erased == 0:
                break
    print(f"{total} job(s) erased")
    return 0


# The verbs whose process keeps state under VAR_DIR.
_USES_VAR = frozenset({"migrate", "api", "worker", "beat", "clients", "admin", "dev"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soraq", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("migrate", help="bring the database schema up to date")
    api = verbs.add_parser("api", help="run the HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    worker = verbs.add_parser(
        "worker", help="run a Celery worker (plus beat on the embedded broker)"
    )
    worker.add_argument(
        "--beat",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run the beat schedule (default: only on the embedded broker)",
    )
    worker.add_argument(
        "--queues",
        default=None,
        help=f"comma-separated queues to consume: {JOBS_QUEUE} (job steps, the sweep), "
        f"{WEBHOOK_QUEUE} (deliveries), {ARCHIVE_QUEUE} (result downloads); default all",
    )
    verbs.add_parser("beat", help="run the beat schedule (exactly one per deployment)")
    submit = verbs.add_parser(
        "submit", help="submit a job to a running soraq (SORAQ_URL, SORAQ_API_KEY)"
    )
    submit.add_argument("prompt")
    submit.add_argument("--image", help="an image file, or an https URL")
    submit.add_argument("--model")
    submit.add_argument("--wait", action="store_true", help="follow the job; print its video URL")
    verbs.add_parser(
        "openapi", help="print the API's OpenAPI document (clients/typescript generates from it)"
    )
    jobs_parser = verbs.add_parser(
        "jobs", help="list your recent jobs on a running soraq; `jobs purge` erases old ones"
    )
    jobs_parser.add_argument(
        "action",
        nargs="?",
        choices=["list", "purge"],
        default="list",
        help="list (a running soraq's, through SORAQ_URL) or purge (this database's)",
    )
    jobs_parser.add_argument("--status")
    jobs_parser.add_argument("--limit", type=int, default=20)
    jobs_parser.add_argument(
        "--older-than",
        type=parse_age,
        help="purge: erase the data of jobs that ended longer ago than this (90d, 12h, 30m)",
    )
    jobs_parser.add_argument("--client", help="purge: only this client's jobs")
    clients_parser = verbs.add_parser("clients", help="manage API clients")
    client_actions = clients_parser.add_subparsers(dest="action", required=True)
    create = client_actions.add_parser("create", help="create a client; prints its key once")
    create.add_argument("name")
    create.add_argument(
        "--max-active-jobs", type=int, default=get_settings().default_max_active_jobs
    )
    create.add_argument(
        "--weight", type=int, default=1, help="its share of Kie's capacity against other clients"
    )
    create.add_argument(
        "--retention-days",
        type=int,
        help="days its archived videos are kept (default RESULT_RETENTION_DAYS)",
    )
    create.add_argument(
        "--create-rate",
        help="new jobs allowed per window, e.g. 600/1m (default CLIENT_CREATE_RATE)",
    )
    budget_help = "credits per UTC calendar %s (a whole number; none: no cap)"
    create.add_argument(
        "--test",
        action="store_true",
        help="a test-mode key: its jobs run on the sandbox (TEST_MODE_KIE_URL), fault keywords "
        "included, and cost nothing; they show livemode: false",
    )
    create.add_argument("--daily-credits", help=budget_help % "day")
    create.add_argument("--monthly-credits", help=budget_help % "month")
    set_budget = client_actions.add_parser(
        "set-budget", help="change a client's daily and monthly credit budgets"
    )
    set_budget.add_argument("name")
    set_budget.add_argument("--daily-credits", help=budget_help % "day")
    set_budget.add_argument("--monthly-credits", help=budget_help % "month")
    client_actions.add_parser("list", help="list clients")
    client_actions.add_parser("rotate-key", help="give a client a new key").add_argument("name")
    client_actions.add_parser("disable", help="disable a client's key").add_argument("name")
    rotate_secret = client_actions.add_parser(
        "rotate-webhook-secret", help="a new webhook signing secret, the old one kept a while"
    )
    rotate_secret.add_argument("name")
    rotate_secret.add_argument(
        "--grace-hours", type=float, default=24.0, help="how long the old secret still signs"
    )
    admin_parser = verbs.add_parser("admin", help="operator actions")
    admin_actions = admin_parser.add_subparsers(dest="action", required=True)
    admin_actions.add_parser("revoke-sessions", help="log every dashboard session out")
    verbs.add_parser(
        "operator-secret",
        help="print the secret that signs account events to OPERATOR_WEBHOOK_URL",
    )
    catalogue_parser = verbs.add_parser("catalogue", help="the catalogue against Kie's live one")
    catalogue_actions = catalogue_parser.add_subparsers(dest="action", required=True)
    catalogue_actions.add_parser("check", help="report drift from Kie's catalogue (exit 1)")
    sync_parser = catalogue_actions.add_parser(
        "sync", help="write the catalogue with Kie's changes applied, for review"
    )
    sync_parser.add_argument("--write", required=True, metavar="FILE", type=Path)
    sandbox = verbs.add_parser("sandbox", help="run the Kie + imgbb stand-in")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument(
        "--test-mode",
        action="store_true",
        help="serve test-mode keys' jobs (the only way it runs under ENVIRONMENT=production)",
    )
    dev_parser = verbs.add_parser("dev", help="migrate, then sandbox + api + worker together")
    dev_parser.add_argument("--host", default="127.0.0.1")
    dev_parser.add_argument("--port", type=int, default=8000)
    dev_parser.add_argument("--sandbox-port", type=int, default=8765)
    args = parser.parse_args(argv)

    settings = get_settings()
    setup_logging(settings.log_level, settings.resolved_log_format)
    if args.verb in _USES_VAR:
        private_folder(settings.var_dir)  # the database, uploads, videos, generated secrets
    if args.verb in ("api", "worker", "beat"):
        try:
            accounts(settings)
        except ValueError as exc:  # a broken UPSTREAMS_FILE: say what, never start
            print(f"soraq: {exc}", file=sys.stderr)
            return 2
    if args.verb == "migrate":
        migrate()
    elif args.verb == "api":
        run_api(args.host, args.port)
    elif args.verb == "worker":
        run_worker(args.beat, args.queues)
    elif args.verb == "beat":
        run_beat()
    elif args.verb == "clients":
        return clients_command(args)
    elif args.verb == "admin":
        from models.admin import revoke_all_sessions
        from models.db import session_scope

        with session_scope() as session:
            count = revoke_all_sessions(session)
            session.commit()
        print(f"{count} dashboard session(s) revoked")
    elif args.verb == "submit":
        from soraq import remote

        return remote.submit(args.prompt, args.image, args.model, args.wait)
    elif args.verb == "openapi":
        from api.app import create_app

        print(json.dumps(create_app().openapi(), indent=2, ensure_ascii=False))
    elif args.verb == "jobs" and args.action == "purge":
        if args.older_than is None:
            parser.error("jobs purge needs --older-than (e.g. 90d)")
        return purge_jobs(args.older_than, args.client)
    elif args.verb == "jobs":
        from soraq import remote

        return remote.jobs(args.status, args.limit)
    elif args.verb == "operator-secret":
        from core.operator_secret import operator_secret

        print(operator_secret(settings))
    elif args.verb == "catalogue":
        from soraq import catalogue_cli

        if args.action == "check":
            return catalogue_cli.check()
        return catalogue_cli.sync(args.write)
    elif args.verb == "sandbox":
        return run_sandbox(args.host, args.port, test_mode=args.test_mode, settings=settings)
    elif args.verb == "dev":
        return dev(args.host, args.port, args.sandbox_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
