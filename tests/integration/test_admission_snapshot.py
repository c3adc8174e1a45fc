"""One dispatcher round sees the queue as of one instant, for every account at once.

PostgreSQL runs each statement of a READ COMMITTED transaction on its own snapshot: with a
queue query per account, a job committed between account a's query and account b's was seen
by b alone, and b took it although a — first by priority — had room (CI caught it once:
`test_accounts`' first jobs must all go to the first account)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from core.config import Settings
from models.base import utcnow
from models.db import make_engine
from models.job import Job
from tests.unit.test_admission import queue
from worker.admission import admit

ACCOUNTS = "".join(
    f'[[accounts]]\nname = "{name}"\nprovider = "kie-compatible"\n'
    f'base_url = "https://{name}.example"\nkey_env = "SORAQ_SNAPSHOT_KEY"\n'
    f'create_rate = "5/10s"\npriority = {priority}\n\n'
    for priority, name in enumerate(["a", "b"], start=1)
)


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SORAQ_SNAPSHOT_KEY", "sk-snapshot-0123456789")
    path = tmp_path / "upstreams.toml"
    path.write_text(ACCOUNTS)
    return Settings(upstreams_file=path)


def test_a_job_committed_during_a_round_is_not_taken_past_the_first_account(
    engine: Engine, settings: Settings
) -> None:
    with Session(engine) as session:
        admit(session, settings, utcnow())  # the accounts' rows
        session.commit()
        queue(session, {"early": 1})

    late_inserted: list[bool] = []

    def commit_a_job_meanwhile(*args: Any) -> None:
        statement = args[2]
        if "row_number" in statement and not late_inserted:
            late_inserted.append(True)
            with Session(engine) as other:  # another connection: it commits at once
                queue(other, {"late": 1})

    event.listen(engine, "after_cursor_execute", commit_a_job_meanwhile)
    try:
        with Session(engine) as session:
            first = admit(session, settings, utcnow())
            session.commit()
    finally:
        event.remove(engine, "after_cursor_execute", commit_a_job_meanwhile)
    assert late_inserted  # the job did commit during the round

    with Session(engine) as session:
        rows = session.execute(select(Job.client_id, Job.account))
        accounts = {client: at for client, at in rows}
        assert len(first.admitted) == 1
        # The early job went to a; the late one to no one yet — not to b, while a has room.
        assert accounts == {"cl_early": "a", "cl_late": None}
        later = admit(session, settings, utcnow())
        session.commit()
        assert len(later.admitted) == 1
        assert session.scalar(select(Job.account).where(Job.client_id == "cl_late")) == "a"
