FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 soraq
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY clients/python ./clients/python
# Every runtime package (tests/unit/test_layers.py lists them; a new one goes here too).
COPY core ./core
COPY broker ./broker
COPY catalogue ./catalogue
COPY media ./media
COPY models ./models
COPY migrations ./migrations
COPY upstreams ./upstreams
COPY views ./views
COPY api ./api
COPY worker ./worker
COPY sandbox ./sandbox
COPY devstack ./devstack
COPY soraq ./soraq
RUN pip install ./clients/python . && mkdir -p /var/lib/soraq/metrics \
    && chown soraq /var/lib/soraq/metrics
USER soraq
EXPOSE 8000
CMD ["soraq", "api", "--host", "0.0.0.0", "--port", "8000"]
