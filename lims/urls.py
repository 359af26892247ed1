from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from lims import project_pages, views

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
    path("projects/", project_pages.project_list, name="project-list"),
    path("projects/<slug:slug>/", project_pages.project_detail, name="project-detail"),
    path("projects/<slug:slug>/members/", project_pages.member_set, name="project-member-set"),
    path(
        "projects/<slug:slug>/members/<str:username>/remove/",
        project_pages.member_remove,
        name="project-member-remove",
    ),
    path("projects/<slug:slug>/tokens/", project_pages.token_issue, name="project-token-issue"),
    path(
        "projects/<slug:slug>/tokens/<int:pk>/revoke/",
        project_pages.token_revoke,
        name="project-token-revoke",
    ),
    path("cells/", include("cells.urls")),
    path("samples/", include("samples.urls")),
    path("depositions/", include("depositions.urls")),
    path("catalogue/", include("lims.catalogue")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("lims.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
