FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 soraq
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY api ./api
COPY worker ./worker
COPY models ./models
COPY migrations ./migrations
COPY sandbox ./sandbox
COPY soraq ./soraq
RUN pip install . && mkdir -p /var/lib/soraq/metrics && chown soraq /var/lib/soraq/metrics
USER soraq
EXPOSE 8000
CMD ["soraq", "api", "--host", "0.0.0.0", "--port", "8000"]
