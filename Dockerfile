# The seatledger image for docker-compose.yml: worker, sink, archive and the CLI.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . /app
RUN pip install . \
 && useradd --create-home --uid 10001 seatledger \
 && mkdir -p /data \
 && chown seatledger /data

USER seatledger
# A named volume mounted here inherits the ownership above.
VOLUME /data
ENV SEATLEDGER_DATA_DIR=/data \
    SEATLEDGER_DB=/data/seatledger.duckdb

CMD ["seatledger", "--help"]
