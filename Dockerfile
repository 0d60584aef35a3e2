# One image for every role: nbzx receiver | consumer | console | reconcile | scheduler | replay | kafka init.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY nbzx ./nbzx
RUN pip wheel --no-cache-dir --wheel-dir /wheels . && sha256sum /wheels/*.whl > /wheels.sha256

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The wheels are bind-mounted from the build stage, not copied: no layer keeps them. A bind mount is no
# part of a layer's cache key, so the list of wheels with their hashes is copied first: new code, new
# list, and the install below runs again (without it the image kept the first code it was built with).
COPY --from=build /wheels.sha256 /usr/local/share/nbzx/wheels.sha256
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir /wheels/*.whl \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin nbzx
USER 10001
EXPOSE 8090 8091 8092
ENTRYPOINT ["nbzx"]
CMD ["--help"]
