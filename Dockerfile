# The Airflow image of the compose stack: the official image plus this project's pins.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/precache/
RUN pip install --no-cache-dir -r /opt/precache/requirements.txt -c /opt/precache/constraints.txt \
    "apache-airflow-providers-celery" "apache-airflow-providers-postgres"
COPY --chown=airflow:0 standins /opt/precache/standins
ENV PYTHONPATH=/opt/precache
