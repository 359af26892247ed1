from django.urls import path

from samples import views

app_name = "samples"

urlpatterns = [
    path("", views.sample_list, name="sample-list"),
    path("new/", views.sample_create, name="sample-create"),
    path("import/", views.sample_import, name="sample-import"),
    path("mix/", views.sample_mix, name="sample-mix"),
    path("lots/", views.lot_list, name="lot-list"),
    path("materials/", views.material_list, name="material-list"),
    path("<str:code>/", views.sample_detail, name="sample-detail"),
    path("<str:code>/split/", views.sample_split, name="sample-split"),
    path("<str:code>/exposures/", views.exposure_add, name="exposure-add"),
]
