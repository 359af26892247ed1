from django.urls import path

from cells import views
from cells.eis import views as eis_views

app_name = "cells"

urlpatterns = [
    path("", views.cell_list, name="cell-list"),
    path("new/", views.cell_create, name="cell-create"),
    path("from-lot/<int:lot_id>/", views.cells_from_lot, name="cells-from-lot"),
    path("spectra/<int:pk>/", eis_views.spectrum_detail, name="spectrum-detail"),
    path("spectra/<int:pk>/refit/", eis_views.spectrum_refit, name="spectrum-refit"),
    path("spectra/<int:pk>/link/", eis_views.spectrum_link, name="spectrum-link"),
    path("<str:code>/", views.cell_detail, name="cell-detail"),
    path("<str:code>/edit/", views.cell_edit, name="cell-edit"),
    path(
        "<str:code>/tests/<int:pk>/<str:action>/",
        views.cycling_test_chain,
        name="cycling-test-chain",
    ),
]
