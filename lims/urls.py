from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from lims import views

handler400 = "lims.ingestion.uploads.bad_request"  # says which form limit was passed
handler404 = "lims.api.views.not_found"  # JSON under /api/

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("upload/", views.upload, name="upload"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/<int:pk>/", views.job_detail, name="job-detail"),
    path("jobs/<int:pk>/status/", views.job_status, name="job-status"),
    path("jobs/<int:pk>/rerun/", views.job_rerun, name="job-rerun"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("cells/", include("cells.urls")),
    path("samples/", include("samples.urls")),
    path("depositions/", include("depositions.urls")),
    path("catalogue/", include("lims.catalogue")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("lims.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
