"""The anneal page: its furnace-log table shows each log's verdict and checks."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import pytest

from depositions import services
from depositions.inputs import SegmentInput
from tests.depositions.factories import furnace_csv

pytestmark = pytest.mark.django_db

PLAN = [  # 600 degC for 2 h: what furnace_csv() writes by default
    SegmentInput(kind="ramp", target_c=Decimal("600"), rate_k_per_min=Decimal("5")),
    SegmentInput(kind="dwell", target_c=Decimal("600"), duration_min=Decimal("120")),
    SegmentInput(kind="cool", target_c=Decimal("25"), rate_k_per_min=Decimal("5")),
]


@pytest.fixture
def anneal(project):
    return services.post_treatment_create(
        project=project, code="AN-600", atmosphere="o2", segments=PLAN
    )


def _rows(page: str, table_id: str) -> list[list[str]]:
    """The text of each body row's cells of one table (tags stripped)."""
    table = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', page, re.S)
    assert table, f"no table #{table_id}"
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", r)]
        for r in rows
    ]


def test_the_verdict_column_shows_each_logs_overall_status(anneal, user, client):
    services.furnace_log_attach(
        treatment=anneal, stream=io.BytesIO(furnace_csv()), filename="good.csv"
    )
    services.furnace_log_attach(
        treatment=anneal, stream=io.BytesIO(furnace_csv(hold_s=3600)), filename="short.csv"
    )
    client.force_login(user)
    page = client.get(f"/depositions/anneals/{anneal.code}/").content.decode()
    rows = {r[0]: r for r in _rows(page, "furnace-logs")}
    assert rows["good.csv"][1] == "Pass"
    assert rows["short.csv"][1] == "Fail"
    assert rows["short.csv"][2] == str(
        anneal.furnace_logs.get(raw_file__original_name="short.csv").points
    )
    assert "held 3720 s of 7200 s planned" in page  # the failing check says why
