from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from lims.api.fields import ModelSerializer as ScopedModelSerializer
from lims.ingestion.services import KINDS, TEMPERATURE_RANGE_C
from lims.models import ColumnMapping, IngestionJob, Instrument, Membership, Project, RawFile


class JSONObjectField(serializers.JSONField):
    """A JSON object; too deep a nesting is a 400 (DRF lets the RecursionError through)."""

    def to_internal_value(self, data: Any) -> Any:
        try:
            value = super().to_internal_value(data)
        except RecursionError as exc:
            raise serializers.ValidationError("JSON nested too deeply") from exc
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        return value


class IngestRequestSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    kind = serializers.ChoiceField(
        choices=KINDS,
        required=False,
        error_messages={"invalid_choice": f"unknown kind; expected one of {', '.join(KINDS)}"},
    )
    cell = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text="Cell code (not with sample)"
    )
    sample = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text="Sample code (impedance; not with cell)",
    )
    # the range is checked by ingest_submit (the browser form goes through the same check)
    temperature_c = serializers.FloatField(
        required=False,
        help_text="Measurement temperature, °C (impedance spectra), within "
        f"{TEMPERATURE_RANGE_C[0]:g}..{TEMPERATURE_RANGE_C[1]:g}",
    )
    run = serializers.CharField(required=False, allow_blank=True, max_length=64)
    anneal = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text="Anneal code (furnace logs)"
    )
    project = serializers.SlugField(
        required=False, help_text="Project slug (people only; instruments use their own)"
    )
    metadata = JSONObjectField(
        required=False, help_text="JSON object, at most LIMS_FORM_FIELD_MAX_BYTES (64 KiB)"
    )


class RawFileSerializer(ScopedModelSerializer):
    """A stored raw file; ``download`` serves its bytes unchanged (sha256 as ETag)."""

    download = serializers.SerializerMethodField()

    class Meta:
        model = RawFile
        fields = ["id", "sha256", "size", "original_name", "encoding", "received_at", "download"]

    def get_download(self, obj: RawFile) -> str:
        return reverse("api:raw-file-download", args=[obj.pk])


class JobSerializer(ScopedModelSerializer):
    url = serializers.SerializerMethodField()
    raw_file = RawFileSerializer(read_only=True)

    class Meta:
        model = IngestionJob
        fields = [
            "id",
            "url",
            "status",
            "progress",
            "error",
            "result",
            "kind",
            "parser_name",
            "parser_version",
            "attempts",
            "params",
            "raw_file",
            "project",
            "created_at",
            "started_at",
            "finished_at",
            "duration_s",
        ]

    def get_url(self, job: IngestionJob) -> str:
        request = self.context.get("request")
        path = reverse("api:job-detail", args=[job.pk])
        return request.build_absolute_uri(path) if request else path


class IngestJobRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    status = serializers.CharField()


class IngestRawRefSerializer(serializers.Serializer):
    sha256 = serializers.CharField()
    size = serializers.IntegerField()


class IngestResponseSerializer(serializers.Serializer):
    job = IngestJobRefSerializer()
    raw_file = IngestRawRefSerializer()

    @staticmethod
    def build(job: IngestionJob, url: str) -> dict[str, Any]:
        return {
            "job": {"id": job.pk, "url": url, "status": job.status},
            "raw_file": {"sha256": job.raw_file.sha256, "size": job.raw_file.size},
        }


class RawFileCheckQuerySerializer(serializers.Serializer):
    sha256 = serializers.RegexField(
        r"^[0-9a-fA-F]{64}$",
        help_text="SHA-256 of the file's bytes, 64 hex digits",
        error_messages={"invalid": "expected 64 hex digits"},
    )
    project = serializers.SlugField(
        required=False, help_text="Project slug (people; an instrument asks about its own)"
    )


class RawFileCheckSerializer(serializers.Serializer):
    sha256 = serializers.CharField()
    stored = serializers.BooleanField(help_text="These bytes are stored in the project")
    job = IngestJobRefSerializer(
        allow_null=True, help_text="The job of the bytes, when the caller may follow it"
    )

    @staticmethod
    def build(sha256: str, stored: bool, job: IngestionJob | None, url: str) -> dict[str, Any]:
        ref = None if job is None else {"id": job.pk, "url": url, "status": job.status}
        return {"sha256": sha256, "stored": stored, "job": ref}


class ProjectSerializer(ScopedModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "slug", "description"]


class InstrumentSerializer(ScopedModelSerializer):
    class Meta:
        model = Instrument
        fields = [
            "id",
            "name",
            "kind",
            "vendor",
            "model",
            "serial",
            "location",
            "project",
            "last_file_at",
        ]


class ColumnMappingSerializer(ScopedModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", queryset=Project.objects.all())

    class Meta:
        model = ColumnMapping
        fields = [
            "id",
            "project",
            "name",
            "kind",
            "parser_name",
            "description",
            "mapping",
            "updated_at",
        ]
        validators: list[Any] = []  # uniqueness: saving by name replaces (the service decides)


class MemberSerializer(serializers.Serializer):
    """A person's role in a project (``POST`` adds them or changes the role: managers only)."""

    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Membership.Role.choices)
