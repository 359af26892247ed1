from django.urls import path

from depositions import views

app_name = "depositions"

urlpatterns = [
    path("recipes/", views.recipe_list, name="recipe-list"),
    path("recipes/new/", views.recipe_create, name="recipe-create"),
    path("recipes/<int:pk>/", views.recipe_detail, name="recipe-detail"),
    path("runs/", views.run_list, name="run-list"),
    path("runs/new/", views.run_create, name="run-create"),
    path("runs/<str:code>/", views.run_detail, name="run-detail"),
    path("runs/<str:code>/thickness/", views.run_thickness_add, name="run-thickness-add"),
    path("runs/<str:code>/logs/", views.run_logs_upload, name="run-logs-upload"),
    path("runs/<str:code>/logs/link/", views.run_log_link, name="run-log-link"),
    path("runs/<str:code>/recheck/", views.run_recheck, name="run-recheck"),
    path("tools/", views.tool_list, name="tool-list"),
    path("tools/<int:pk>/", views.tool_detail, name="tool-detail"),
    path("tools/<int:pk>/thresholds/", views.tool_thresholds, name="tool-thresholds"),
    path("precursor-lots/", views.precursor_lot_list, name="precursor-lot-list"),
    path("anneals/", views.anneal_list, name="anneal-list"),
    path("anneals/new/", views.anneal_create, name="anneal-create"),
    path("anneals/<str:code>/", views.anneal_detail, name="anneal-detail"),
    path("anneals/<str:code>/logs/", views.anneal_logs_upload, name="anneal-logs-upload"),
    path("anneals/<str:code>/logs/link/", views.anneal_log_link, name="anneal-log-link"),
    path("anneals/<str:code>/recheck/", views.anneal_recheck, name="anneal-recheck"),
    path("precursor-lots/<int:pk>/runs/", views.precursor_lot_runs, name="precursor-lot-runs"),
]
