# The Airflow image of the compose stack (docker-compose.yaml): the official image plus this
# project's pinned dependencies, the way https://airflow.apache.org/docs/docker-stack/build.html
# recommends (a custom image, not _PIP_ADDITIONAL_REQUIREMENTS at every container start).
#
# The Celery and PostgreSQL providers (CeleryExecutor, metadata DB) ship with the official image;
# requirements.txt adds the MongoDB and HTTP providers, pika, pydantic and the rest, at the exact
# versions of constraints.txt (the versions the tests ran with). apache-airflow itself is pinned in
# requirements.txt to the image's 3.3.2, so pip never swaps Airflow out from under the image.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt constraints.txt /opt/precache/
RUN pip install --no-cache-dir -r /opt/precache/requirements.txt -c /opt/precache/constraints.txt

# The portal and TTS proxy stand-ins run from this same image (services portal, tts-proxy).
COPY --chown=airflow:0 standins /opt/precache/standins

# /opt/precache: the stand-ins; /opt/airflow/plugins: the `precache` package (mounted by compose),
# so `python -m precache.cli follow|report` works in any Airflow container.
ENV PYTHONPATH=/opt/precache:/opt/airflow/plugins
