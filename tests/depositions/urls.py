"""The depositions API mounted the way the project will mount it (under /api/v1/), + admin."""

from django.contrib import admin
from django.urls import include, path

from depositions.api.urls import router

urlpatterns = [
    path("api/v1/", include(router.urls)),
    path("admin/", admin.site.urls),
]
