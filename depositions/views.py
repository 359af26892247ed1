"""Pages for recipes, runs and anneals. Forms validate; the services write."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from depositions import expansion, selectors, services
from depositions.aldlogs import selectors as log_selectors
from depositions.aldlogs import services as log_services
from depositions.choices import QC_VERDICTS
from depositions.forms import (
    AnnealForm,
    AnnealInputFormSet,
    AnnealLogLinkForm,
    AnnealLogUploadForm,
    BlockFormSet,
    CompleteRunForm,
    LoadFormSet,
    RecipeForm,
    RunForm,
    RunLogLinkForm,
    RunLogUploadForm,
    SegmentFormSet,
    StepFormSet,
    SubCycleFormSet,
    ThicknessForm,
    ToolThresholdsForm,
)
from depositions.furnace import selectors as furnace_selectors
from depositions.furnace import services as furnace_services
from depositions.inputs import AnnealInput, BlockInput, SegmentInput, StepInput, SubCycleInput
from depositions.models import DepositionRun, PrecursorLot
from lims import access, changelog
from lims.export import csv_response
from samples.selectors import sample_list


def _filled(formset: Any, key: str) -> list[dict[str, Any]]:
    return [f.cleaned_data for f in formset if f.cleaned_data.get(key)]


def _sample(request: HttpRequest, code: str) -> Any:
    found = sample_list(user=request.user).filter(code=code).first()
    if found is None:
        raise ValidationError(f"no sample {code!r} in your projects")
    return found


@login_required
def recipe_list(request: HttpRequest) -> HttpResponse:
    recipes = selectors.recipe_list(user=request.user, filters=request.GET.dict())
    page = Paginator(recipes, 50).get_page(request.GET.get("page"))
    return render(request, "depositions/recipe_list.html", {"page": page})


@login_required
@access.write_required()
def recipe_create(request: HttpRequest) -> HttpResponse:
    data = request.POST or None
    form = RecipeForm(data, user=request.user)
    subcycles = SubCycleFormSet(data, prefix="sc")
    steps = StepFormSet(data, prefix="st")
    blocks = BlockFormSet(data, prefix="bl")
    if request.method == "POST" and all(x.is_valid() for x in (form, subcycles, steps, blocks)):
        fields = dict(form.cleaned_data)
        rows = _filled(steps, "kind")
        try:
            built = [
                SubCycleInput(
                    name=sc["name"],
                    gpc_angstrom=sc["gpc_angstrom"],
                    target_material=sc["target_material"],
                    steps=[
                        StepInput(
                            kind=r["kind"],
                            duration_s=r["duration_s"] or Decimal(0),
                            source_label=r["source_label"],
                            flow_sccm=r["flow_sccm"],
                            plasma_power_w=r["plasma_power_w"],
                        )
                        for r in rows
                        if r["subcycle"] == sc["name"]
                    ],
                )
                for sc in _filled(subcycles, "name")
            ]
            orphans = {r["subcycle"] for r in rows} - {sc.name for sc in built}
            if orphans:
                raise ValidationError(
                    f"steps name unknown sub-cycles: {', '.join(sorted(orphans))}"
                )
            recipe = services.recipe_create(
                project=fields.pop("project"),
                name=fields.pop("name"),
                subcycles=built,
                blocks=[
                    BlockInput(subcycle=b["subcycle"], repeat=b["repeat"] or 1)
                    for b in _filled(blocks, "subcycle")
                ],
                supercycle_repeats=fields.pop("supercycle_repeats"),
                created_by=request.user,
                **fields,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Recipe {recipe} saved.")
            return redirect("depositions:recipe-detail", pk=recipe.pk)
    context = {"form": form, "subcycles": subcycles, "steps": steps, "blocks": blocks}
    return render(request, "depositions/recipe_form.html", context)


@login_required
def recipe_detail(request: HttpRequest, pk: int) -> HttpResponse:
    recipe = get_object_or_404(selectors.recipe_list(user=request.user), pk=pk)
    summary = selectors.recipe_summary(recipe=recipe)
    timeline: list[dict[str, Any]] = []
    if "error" not in summary:
        spec = selectors.recipe_spec(recipe=recipe)
        per_super = expansion.step_count(spec) // max(spec.repeats, 1)
        for step in expansion.iter_steps(spec):
            if len(timeline) >= max(per_super, 1):  # one supercycle shows the pattern
                break
            timeline.append(
                {
                    "start": step.start_s,
                    "duration": step.duration_s,
                    "kind": step.kind,
                    "source": step.source_label or step.kind,
                    "subcycle": step.subcycle,
                }
            )
    return render(
        request,
        "depositions/recipe_detail.html",
        {"recipe": recipe, "summary": summary, "timeline": timeline},
    )


@login_required
def run_list(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    runs = selectors.run_list(user=request.user, filters=request.GET.dict())
    if request.GET.get("export") == "csv":
        return csv_response(
            "runs.csv",
            [
                ("code", lambda r: r.code),
                ("project", lambda r: r.project.slug),
                ("tool", lambda r: str(r.tool)),
                ("recipe", lambda r: f"{r.recipe.name} v{r.recipe.version}"),
                ("status", lambda r: r.status),
                ("qc_verdict", lambda r: r.qc_verdict),
                ("planned_cycles", lambda r: r.planned_cycles),
                ("actual_cycles", lambda r: r.actual_cycles),
                ("setpoint_temperature_c", lambda r: r.setpoint_temperature_c),
                ("started_at", lambda r: r.started_at),
                ("ended_at", lambda r: r.ended_at),
            ],
            runs.iterator(chunk_size=500),
        )
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "depositions/run_list.html",
        {"page": page, "qc_verdicts": QC_VERDICTS},
    )


@login_required
@access.write_required()
def run_create(request: HttpRequest) -> HttpResponse:
    data = request.POST or None
    form = RunForm(data, user=request.user)
    loads = LoadFormSet(data, prefix="ld")
    if request.method == "POST" and form.is_valid() and loads.is_valid():
        fields = dict(form.cleaned_data)
        try:
            with transaction.atomic():  # the run and its loads, or nothing
                run = services.run_create(
                    project=fields.pop("project"),
                    code=fields.pop("code"),
                    tool=fields.pop("tool"),
                    recipe=fields.pop("recipe"),
                    chamber=fields.pop("chamber"),
                    operator=request.user,
                    **fields,
                )
                for row in _filled(loads, "sample"):
                    services.run_load_add(
                        run=run,
                        sample=_sample(request, row["sample"]),
                        role=row["role"],
                        mass_g=row["mass_g"],
                        bet_m2_g=row["bet_m2_g"],
                        area_cm2=row["area_cm2"],
                    )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("depositions:run-detail", code=run.code)
    return render(request, "depositions/run_form.html", {"form": form, "loads": loads})


def _run(request: HttpRequest, code: str) -> DepositionRun:
    try:
        run = selectors.run_get(user=request.user, code=code)
    except DepositionRun.DoesNotExist:
        raise Http404("no such run") from None
    access.check_request(request, run.project_id)
    return run


@login_required
@access.write_required()
def run_detail(request: HttpRequest, code: str) -> HttpResponse:
    run = _run(request, code)
    form = CompleteRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.run_complete(
                run=run,
                actual_cycles=form.cleaned_data["actual_cycles"],
                measured_temperature_c=form.cleaned_data["measured_temperature_c"],
            )
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            messages.success(request, f"Run {run.code} completed; coated samples recorded.")
        return redirect("depositions:run-detail", code=run.code)
    log_files = log_selectors.run_log_files(run=run)
    segments = log_selectors.run_segments(run=run)
    context = {
        "run": run,
        "summary": (run.recipe_snapshot or {}).get("summary", {}),
        "loads": run.loads.select_related("sample", "output_sample"),
        "dose": selectors.run_dose_check(run=run),
        "gpc": [g.as_dict() for g in selectors.run_gpc(run=run)],
        "form": form,
        "thickness_form": ThicknessForm(),
        "checks": run.checks.select_related("log__raw_file", "segment"),
        "pulse_summary": log_selectors.run_pulse_summary(run=run),
        "trace": log_selectors.run_trace(run=run),
        "log_files": log_files,
        "segments": segments,
        "several_data_logs": len(segments) > 1,
        "upload_form": RunLogUploadForm(),
        "link_form": RunLogLinkForm(run=run),
    }
    return render(request, "depositions/run_detail.html", context)


def _submit_logs(request: HttpRequest, form: Any, submit: Any) -> None:
    """Each uploaded file of a page's log form becomes its own job; one message per file.

    The job is always of the page's project (raw files are deduplicated per project)."""
    if getattr(request, "lims_upload_too_large", False):
        messages.error(request, "The upload is larger than the limit: push it to /api/v1/ingest/.")
        return
    if not form.is_valid():
        messages.error(request, "; ".join(str(e) for errs in form.errors.values() for e in errs))
        return
    for upload in form.cleaned_data["logs"]:
        try:
            job, created = submit(upload)
        except ValidationError as exc:
            messages.error(request, f"{upload.name}: {'; '.join(exc.messages)}")
            continue
        how = "queued" if created else "already stored"
        messages.info(request, f"{upload.name}: {how} (job {job.pk}).")


@login_required
@access.write_required()
@require_POST
def run_logs_upload(request: HttpRequest, code: str) -> HttpResponse:
    """Several files at once; each becomes its own job, linked to the run."""
    run = _run(request, code)
    form = RunLogUploadForm(request.POST, request.FILES)
    _submit_logs(
        request,
        form,
        lambda upload: log_services.run_log_submit(
            run=run,
            stream=upload,
            filename=upload.name,
            user=request.user,
            content_type=upload.content_type or "",
        ),
    )
    return redirect("depositions:run-detail", code=run.code)


@login_required
@access.write_required()
@require_POST
def run_log_link(request: HttpRequest, code: str) -> HttpResponse:
    run = _run(request, code)
    form = RunLogLinkForm(request.POST, run=run)
    if form.is_valid():
        log_file = form.cleaned_data["log_file"]
        try:
            log_services.run_log_link(
                log_file=log_file, run=run, segment=form.cleaned_data.get("segment")
            )
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            messages.success(request, f"{log_file.raw_file.original_name} linked; checking it.")
    else:
        messages.error(request, "Choose an unlinked log of this run's project.")
    return redirect("depositions:run-detail", code=run.code)


@login_required
@access.write_required()
@require_POST
def run_recheck(request: HttpRequest, code: str) -> HttpResponse:
    run = _run(request, code)
    queued = log_services.run_log_recheck(run=run)
    messages.info(
        request,
        f"{len(queued)} log(s) queued for checking." if queued else "Nothing to check again.",
    )
    return redirect("depositions:run-detail", code=run.code)


@login_required
def anneal_list(request: HttpRequest) -> HttpResponse:
    rows = selectors.post_treatment_list(user=request.user, filters=request.GET.dict())
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    return render(request, "depositions/anneal_list.html", {"page": page})


@login_required
@access.write_required()
def anneal_create(request: HttpRequest) -> HttpResponse:
    data = request.POST or None
    form = AnnealForm(data, user=request.user)
    segments = SegmentFormSet(data, prefix="sg")
    if request.method == "POST" and form.is_valid() and segments.is_valid():
        fields = dict(form.cleaned_data)
        try:
            treatment = services.post_treatment_create(
                project=fields.pop("project"),
                code=fields.pop("code"),
                atmosphere=fields.pop("atmosphere"),
                furnace=fields.pop("furnace"),
                segments=[
                    SegmentInput(
                        kind=s["kind"],
                        target_c=s["target_c"],
                        rate_k_per_min=s["rate_k_per_min"],
                        duration_min=s["duration_min"],
                    )
                    for s in _filled(segments, "kind")
                ],
                operator=request.user,
                **fields,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("depositions:anneal-detail", code=treatment.code)
    return render(request, "depositions/anneal_form.html", {"form": form, "segments": segments})


@login_required
@access.write_required()
def anneal_detail(request: HttpRequest, code: str) -> HttpResponse:
    treatment = _anneal(request, code)
    inputs = AnnealInputFormSet(request.POST or None, prefix="in")
    if request.method == "POST" and inputs.is_valid():
        try:
            services.post_treatment_complete(
                treatment=treatment,
                inputs=[
                    AnnealInput(
                        sample=_sample(request, row["sample"]),
                        quantity=row["quantity"],
                        output_code=row["output_code"] or None,
                    )
                    for row in _filled(inputs, "sample")
                ],
            )
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            messages.success(request, f"Anneal {treatment.code} completed.")
        return redirect("depositions:anneal-detail", code=treatment.code)
    profile = furnace_selectors.treatment_profile(treatment=treatment)
    context = {
        "treatment": treatment,
        "segments": treatment.segments.all(),
        "profile": profile.as_dict(),
        "inputs": inputs,
        "logs": furnace_selectors.treatment_logs(treatment=treatment),
        "pending_jobs": [
            {"job": job, "why": job.error or (job.result or {}).get("note", "")}
            for job in furnace_selectors.treatment_pending_jobs(treatment=treatment)
        ],
        "upload_form": AnnealLogUploadForm(),
        "link_form": AnnealLogLinkForm(treatment=treatment),
        "outputs": treatment.operation.outputs.select_related("sample")
        if treatment.operation is not None
        else [],
    }
    return render(request, "depositions/anneal_detail.html", context)


def _anneal(request: HttpRequest, code: str) -> Any:
    anneal = get_object_or_404(selectors.post_treatment_list(user=request.user), code=code)
    access.check_request(request, anneal.project_id)
    return anneal


@login_required
@access.write_required()
@require_POST
def anneal_logs_upload(request: HttpRequest, code: str) -> HttpResponse:
    """Furnace logs for this anneal: each is stored and queued like every raw file."""
    treatment = _anneal(request, code)
    form = AnnealLogUploadForm(request.POST, request.FILES)
    _submit_logs(
        request,
        form,
        lambda upload: furnace_services.furnace_log_submit(
            treatment=treatment,
            stream=upload,
            filename=upload.name,
            user=request.user,
            tolerance_k=form.cleaned_data["tolerance_k"],
            content_type=upload.content_type or "",
        ),
    )
    return redirect("depositions:anneal-detail", code=treatment.code)


@login_required
@access.write_required()
@require_POST
def anneal_log_link(request: HttpRequest, code: str) -> HttpResponse:
    treatment = _anneal(request, code)
    form = AnnealLogLinkForm(request.POST, treatment=treatment)
    if form.is_valid():
        job = form.cleaned_data["job"]
        try:
            furnace_services.furnace_log_link(job=job, treatment=treatment)
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            messages.success(request, f"{job.raw_file.original_name} linked; checking it.")
    else:
        messages.error(request, "Choose an unlinked furnace log of this anneal's project.")
    return redirect("depositions:anneal-detail", code=treatment.code)


@login_required
@access.write_required()
@require_POST
def anneal_recheck(request: HttpRequest, code: str) -> HttpResponse:
    treatment = _anneal(request, code)
    queued = furnace_services.furnace_log_recheck(treatment=treatment)
    messages.info(
        request,
        f"{len(queued)} log(s) queued for checking." if queued else "Nothing to check again.",
    )
    return redirect("depositions:anneal-detail", code=treatment.code)


@login_required
def precursor_lot_runs(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        lot = selectors.precursor_lot_get(user=request.user, pk=pk)
    except PrecursorLot.DoesNotExist as exc:
        raise Http404("no such bottle") from exc
    runs = selectors.runs_for_precursor_lot(user=request.user, lot=lot)
    return render(request, "depositions/precursor_lot_runs.html", {"lot": lot, "runs": runs})


@login_required
@access.write_required()
@require_POST
def run_thickness_add(request: HttpRequest, code: str) -> HttpResponse:
    """Thickness on a run output (typically the witness wafer): feeds the measured GPC."""
    run = _run(request, code)
    form = ThicknessForm(request.POST)
    if form.is_valid():
        data = dict(form.cleaned_data)
        reason = data.pop("reason").strip()
        try:
            sample = _sample(request, data.pop("sample"))
            before = selectors.thickness_measured_before(
                sample=sample, method=data["method"], location=data["location"]
            )
            if before is not None and not reason:
                raise ValidationError(
                    f"{sample.code} already has {before.value_nm} nm by {before.method}"
                    f"{' at ' + before.location if before.location else ''}: say why the new "
                    "value corrects it (reason)"
                )
            changelog.note_reason(request, {"reason": reason})
            services.thickness_measurement_add(
                sample=sample, run=run, operator=request.user, **data
            )
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
    else:
        messages.error(request, form.errors.as_text())
    return redirect("depositions:run-detail", code=run.code)


@login_required
def precursor_lot_list(request: HttpRequest) -> HttpResponse:
    lots = selectors.precursor_lot_list(user=request.user, filters=request.GET.dict())
    page = Paginator(lots, 50).get_page(request.GET.get("page"))
    return render(request, "depositions/precursor_lot_list.html", {"page": page})


@login_required
def tool_list(request: HttpRequest) -> HttpResponse:
    tools = selectors.tool_list(user=request.user, filters=request.GET.dict())
    return render(request, "depositions/tool_list.html", {"tools": tools})


@login_required
def tool_detail(request: HttpRequest, pk: int) -> HttpResponse:
    tool = get_object_or_404(selectors.tool_list(user=request.user), pk=pk)
    overview = log_selectors.tool_overview(tool=tool, user=request.user)
    return render(request, "depositions/tool_detail.html", {"tool": tool, **overview})


@login_required
@access.write_required()
def tool_thresholds(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit the tool's check thresholds field by field (empty = default), then re-check."""
    tool = get_object_or_404(selectors.tool_list(user=request.user), pk=pk)
    access.check_request(request, tool.instrument.project_id)
    form = ToolThresholdsForm(request.POST or None, tool=tool)
    if request.method == "POST" and form.is_valid():
        try:
            services.tool_update(tool=tool, check_thresholds=form.overrides())
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            message = "Thresholds saved."
            if form.cleaned_data["recheck"]:
                queued = log_services.tool_runs_recheck(tool=tool, user=request.user)
                message += f" {len(queued)} log(s) queued for checking."
            messages.success(request, message)
            return redirect("depositions:tool-detail", pk=tool.pk)
    return render(request, "depositions/tool_thresholds.html", {"tool": tool, "form": form})
