# The revision controller's image: `docker build -t openfunction/revision-controller-python:0.1.0 .`
#
# The runtime is distroless: Debian 12's Python 3.11 and nothing else, no shell,
# no package manager. The builder is plain Debian 12 with the very same Python,
# so the virtualenv's interpreter link (/opt/venv/bin/python3 -> /usr/bin/python3)
# still resolves once the virtualenv is copied across.
FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3-venv \
 && python3 -m venv /opt/venv
COPY . /src
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check /src

FROM gcr.io/distroless/python3-debian12:nonroot
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
USER 65532:65532
EXPOSE 8080 8081 8090
ENTRYPOINT ["/opt/venv/bin/revision-controller", "run"]
