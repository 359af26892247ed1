"""The depositions router; the project includes its registry under /api/v1/."""

from rest_framework.routers import DefaultRouter

from depositions.api.views import (
    ChemicalViewSet,
    CompositionMeasurementViewSet,
    DepositionRunViewSet,
    FilmPropertyViewSet,
    PostTreatmentViewSet,
    PrecursorLotViewSet,
    ProcessReferenceViewSet,
    RecipeViewSet,
    RunLogFileViewSet,
    SourceInstallationViewSet,
    ThicknessMeasurementViewSet,
    ToolSourceViewSet,
    ToolViewSet,
)

# Basenames carry the app name so they cannot collide with other apps' routes.
router = DefaultRouter()
router.register("ald-tools", ToolViewSet, basename="depositions-tool")
router.register("tool-sources", ToolSourceViewSet, basename="depositions-tool-source")
router.register(
    "source-installations", SourceInstallationViewSet, basename="depositions-installation"
)
router.register("chemicals", ChemicalViewSet, basename="depositions-chemical")
router.register("precursor-lots", PrecursorLotViewSet, basename="depositions-precursor-lot")
router.register("recipes", RecipeViewSet, basename="depositions-recipe")
router.register(
    "process-references", ProcessReferenceViewSet, basename="depositions-process-reference"
)
router.register("deposition-runs", DepositionRunViewSet, basename="depositions-run")
router.register("run-log-files", RunLogFileViewSet, basename="depositions-run-log-file")
router.register(
    "thickness-measurements", ThicknessMeasurementViewSet, basename="depositions-thickness"
)
router.register(
    "composition-measurements", CompositionMeasurementViewSet, basename="depositions-composition"
)
router.register("film-properties", FilmPropertyViewSet, basename="depositions-film-property")
router.register("post-treatments", PostTreatmentViewSet, basename="depositions-post-treatment")

urlpatterns = router.urls
