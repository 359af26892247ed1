from django.urls import path

from samples import views

app_name = "samples"

urlpatterns = [
    path("", views.sample_list, name="sample-list"),
    path("new/", views.sample_create, name="sample-create"),
    path("import/", views.sample_import, name="sample-import"),
    path("<str:code>/", views.sample_detail, name="sample-detail"),
    path("<str:code>/split/", views.sample_split, name="sample-split"),
]
