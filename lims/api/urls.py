from django.urls import include, path
from rest_framework.routers import DefaultRouter

from cells.api.views import CellsFromLotView, CellViewSet, CyclingTestViewSet
from cells.eis.api import EisSpectrumViewSet
from cells.explorer.api import ExplorerView
from depositions.api.urls import router as depositions_router
from lims.api.views import (
    ColumnMappingViewSet,
    IngestView,
    InstrumentViewSet,
    JobViewSet,
    ProjectViewSet,
    RawFileViewSet,
)
from lims.events.api import DeliveryViewSet, EventViewSet, WebhookReplayViewSet
from samples.api.views import MaterialLotViewSet, MaterialViewSet, SampleViewSet

app_name = "api"

router = DefaultRouter()
router.register("jobs", JobViewSet, basename="job")
router.register("projects", ProjectViewSet, basename="project")
router.register("raw-files", RawFileViewSet, basename="raw-file")
router.register("instruments", InstrumentViewSet, basename="instrument")
router.register("column-mappings", ColumnMappingViewSet, basename="column-mapping")
router.register("cells", CellViewSet, basename="cell")
router.register("cycling-tests", CyclingTestViewSet, basename="cycling-test")
router.register("eis-spectra", EisSpectrumViewSet, basename="eis-spectrum")
router.register("materials", MaterialViewSet, basename="material")
router.register("material-lots", MaterialLotViewSet, basename="material-lot")
router.register("samples", SampleViewSet, basename="sample")
router.register("events", EventViewSet, basename="event")
router.register("deliveries", DeliveryViewSet, basename="delivery")
router.register("webhooks", WebhookReplayViewSet, basename="webhook")
router.registry.extend(depositions_router.registry)

urlpatterns = [
    path("ingest/", IngestView.as_view(), name="ingest"),
    path("explorer/", ExplorerView.as_view(), name="explorer"),
    path("material-lots/<int:lot_id>/cells/", CellsFromLotView.as_view(), name="lot-cells"),
    path("", include(router.urls)),
]
