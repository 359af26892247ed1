from django.urls import path

from cells import views
from cells.eis import views as eis_views
from cells.explorer import views as explorer_views

app_name = "cells"

urlpatterns = [
    path("", views.cell_list, name="cell-list"),
    path("new/", views.cell_create, name="cell-create"),
    path("from-lot/<int:lot_id>/", views.cells_from_lot, name="cells-from-lot"),
    path("explorer/", explorer_views.explorer, name="explorer"),
    path("explorer/export.<str:fmt>", explorer_views.explorer_export, name="explorer-export"),
    path("explorer/views/", explorer_views.explorer_view_create, name="explorer-view-create"),
    path("explorer/views/<int:pk>/", explorer_views.explorer_view_open, name="explorer-view"),
    path("explorer/bottles/<int:pk>/", explorer_views.bottle_cells, name="explorer-bottle"),
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
