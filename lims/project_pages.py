"""The project page: who is in it with which role, its instruments and their tokens.

Everyone in the project reads it; managers add people, change roles and issue or revoke
instrument tokens (``lims.services``: the rules, including "a project keeps one manager").
A new token's key is shown once, on the answer to the request that issued it.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from lims import access, selectors, services
from lims.models import Instrument, InstrumentToken, Membership, Project


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.VIEWER)


class TokenForm(forms.Form):
    instrument_name = forms.CharField(
        max_length=200, help_text="An instrument of this project, or a new one"
    )
    kind = forms.ChoiceField(choices=Instrument.Kind.choices)


def _project(request: HttpRequest, slug: str) -> Project:
    project = selectors.project_get(user=request.user, slug=slug)
    if project is None:
        raise Http404("no such project")
    access.check_request(request, project.pk, role=access.MANAGER)
    return project


def _errors(request: HttpRequest, exc: ValidationError) -> None:
    messages.error(request, "; ".join(exc.messages))


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    projects = selectors.projects_for_user(user=request.user).order_by("name")
    return render(request, "lims/project_list.html", {"projects": projects})


def _render(request: HttpRequest, project: Project, **extra: object) -> HttpResponse:
    context = {
        "project": project,
        "members": selectors.project_members(project=project),
        "instruments": selectors.project_instruments(project=project),
        "can_manage": access.has_role(
            user=request.user, project_id=project.pk, role=access.MANAGER
        ),
        "member_form": MemberForm(),
        "token_form": TokenForm(),
        **extra,
    }
    return render(request, "lims/project_detail.html", context)


@login_required
def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return _render(request, _project(request, slug))


@login_required
@require_POST
def member_set(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(request, slug)
    form = MemberForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.errors.as_text())
        return redirect("project-detail", slug=slug)
    try:
        services.membership_set(project=project, by=request.user, **form.cleaned_data)
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("project-detail", slug=slug)


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    project = _project(request, slug)
    try:
        services.membership_remove(project=project, username=username, by=request.user)
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("project-detail", slug=slug)


@login_required
@require_POST
def token_issue(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(request, slug)
    form = TokenForm(request.POST)
    if form.is_valid():
        try:
            token = services.project_token_issue(
                project=project, by=request.user, **form.cleaned_data
            )
        except ValidationError as exc:
            _errors(request, exc)
        else:  # the key, once: the page is not cached and the key is never shown again
            response = _render(request, project, new_token=token)
            response["Cache-Control"] = "no-store"
            return response
    else:
        messages.error(request, form.errors.as_text())
    return redirect("project-detail", slug=slug)


@login_required
@require_POST
def token_revoke(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    project = _project(request, slug)
    token = InstrumentToken.objects.filter(pk=pk, instrument__project=project).first()
    if token is None:
        raise Http404("no such token")
    services.instrument_token_revoke(token=token, by=request.user)
    messages.success(request, f"{token} revoked")
    return redirect("project-detail", slug=slug)
