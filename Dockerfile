# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends mdbtools curl postgresql-client \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml ./
RUN pip install --upgrade pip && pip install .
COPY . .
RUN useradd --create-home lims && mkdir -p /data && chown lims /data
USER lims
# Production unless told otherwise: DEBUG off, a strong DJANGO_SECRET_KEY required (the
# development mode must be asked for explicitly with LIMS_ENV=development).
ENV LIMS_DATA_DIR=/data DJANGO_SETTINGS_MODULE=lims.settings.base LIMS_ENV=production
RUN LIMS_ENV=development python manage.py collectstatic --noinput -v 0
EXPOSE 8000
CMD ["gunicorn", "lims.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120"]
