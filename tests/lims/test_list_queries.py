"""List pages run a constant number of queries whatever the row count."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def _grows(client, url: str, make: Callable[[int], None]) -> tuple[int, int]:
    for i in range(3):
        make(i)
    few = _queries(client, url)
    for i in range(3, 25):
        make(i)
    return few, _queries(client, url)


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/samples/", "/cells/", "/depositions/recipes/", "/jobs/"])
def test_list_pages_query_count_is_flat(url, client, user, project):
    import io

    from cells import services as cells
    from depositions.inputs import BlockInput, StepInput, SubCycleInput
    from depositions.services import recipe_create
    from lims.ingestion.services import ingest_submit
    from samples import services as samples

    def make(i: int) -> None:
        if url == "/samples/":
            samples.sample_create(project=project, code=f"S-{i}", kind="powder", quantity="1")
        elif url == "/cells/":
            cells.cell_create(project=project, code=f"C-{i}", format="coin", cell_type="full")
        elif url == "/depositions/recipes/":
            recipe_create(
                project=project,
                name=f"R{i}",
                supercycle_repeats=2,
                subcycles=[SubCycleInput("A", [StepInput("pulse", 1, "TMA")])],
                blocks=[BlockInput("A", 1)],
            )
        else:
            ingest_submit(
                stream=io.BytesIO(f"junk {i}".encode()), filename=f"{i}.bin", project=project
            )

    client.force_login(user)
    few, many = _grows(client, url, make)
    assert few == many, f"{url}: {few} queries with 3 rows, {many} with 25"
