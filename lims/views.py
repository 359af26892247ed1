"""Browser pages of the spine: upload, jobs (live), dashboard. Thin over services/selectors."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from lims import access, selectors
from lims.forms import UploadForm
from lims.ingestion import services
from lims.models import EventDelivery, IngestionJob, Instrument, OutboxEvent, WorkerHeartbeat


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("cells:cell-list")


@login_required
@access.write_required()
def upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None, user=request.user)
    if getattr(request, "lims_upload_too_large", False):
        form.add_error("file", "file larger than the upload limit")
    elif request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job, created = services.ingest_submit(
                stream=data["file"],
                filename=data["file"].name,
                project=data["project"],
                kind=data["kind"] or None,
                params=services.upload_params(data),
                user=request.user,  # type: ignore[arg-type]
                content_type=data["file"].content_type or "",
            )
        except ValidationError as exc:
            # the service names the field (sample, temperature_c, file...): shown beside it
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
            for field, texts in errors.items():
                form.add_error(field if field in form.fields else None, texts)
        else:
            if not created:
                messages.info(request, "These exact bytes were uploaded before: showing that job.")
            return redirect("job-detail", pk=job.pk)
    return render(request, "lims/upload.html", {"form": form})


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    qs = selectors.job_list(user=request.user)
    status = request.GET.get("status")
    if status:
        qs = qs.filter(status=status)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "lims/job_list.html",
        {"page": page, "status": status, "statuses": IngestionJob.Status.choices},
    )


@login_required
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(selectors.job_list(user=request.user), pk=pk)
    return render(request, "lims/job_detail.html", {"job": job})


@login_required
def job_status(request: HttpRequest, pk: int) -> JsonResponse:
    job = get_object_or_404(selectors.job_list(user=request.user), pk=pk)
    return JsonResponse(
        {
            "id": job.pk,
            "status": job.status,
            "progress": job.progress,
            "error": job.error,
            "result": job.result,
            "finished": job.status not in ("pending", "running"),
        }
    )


@login_required
@access.write_required()
@require_POST
def job_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(selectors.job_list(user=request.user), pk=pk)
    access.check_request(request, job.project_id)
    try:
        services.job_rerun(job=job)
        messages.success(request, f"Job {job.pk} queued again.")
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    return redirect("job-detail", pk=job.pk)


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    by_status = IngestionJob.objects.aggregate(
        **{
            f"{s}_{span}": Count("pk", filter=Q(status=s, created_at__gte=since))
            for s in IngestionJob.Status.values
            for span, since in (("day", day), ("week", week))
        }
    )
    rows = [
        {"status": s, "label": label, "day": by_status[f"{s}_day"], "week": by_status[f"{s}_week"]}
        for s, label in IngestionJob.Status.choices
    ]
    context = {
        "rows": rows,
        "failures": IngestionJob.objects.filter(status=IngestionJob.Status.FAILED)
        .select_related("raw_file", "project")
        .order_by("-finished_at")[:20],
        "jobs_pending": IngestionJob.objects.filter(status=IngestionJob.Status.PENDING).count(),
        "queue_depth": selectors.broker_queue_depth(),
        "events_pending": OutboxEvent.objects.filter(status=OutboxEvent.Status.PENDING).count(),
        "heartbeats": WorkerHeartbeat.objects.order_by("-seen_at")[:10],
        "heartbeat_stale_after": now - timedelta(seconds=120),
        "deliveries_failing": EventDelivery.objects.filter(
            status__in=[EventDelivery.Status.FAILED, EventDelivery.Status.RETRYING]
        )
        .select_related("event", "webhook")
        .order_by("-updated_at")[:20],
        "instruments": Instrument.objects.select_related("project").annotate(
            files=Count("ingestionjob"), last_job=Max("ingestionjob__created_at")
        ),
        "broker": settings.CELERY_BROKER_URL.split("://")[0],
        "harvesters": selectors.harvester_contacts(
            now=now, stale_after_s=settings.LIMS_HARVESTER_STALE_S
        ),
        "harvester_stale_min": round(settings.LIMS_HARVESTER_STALE_S / 60),
    }
    return render(request, "lims/dashboard.html", context)
