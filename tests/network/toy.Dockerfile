# Test-only image: the toy two-round algorithm (tests/toy_algorithm) on top of lancelot's base.
# Built by scripts/devnet.sh up with the tests/ folder as context; never published.
ARG BASE=localhost/lancelot-base:dev
FROM ${BASE}
COPY toy_algorithm /opt/lancelot-tests/toy_algorithm
RUN python -m compileall -q /opt/lancelot-tests
LABEL org.opencontainers.image.title="lancelot-toy (tests only)"
ENV PKG_NAME=toy_algorithm PYTHONPATH=/opt/lancelot-tests
CMD ["python", "-c", "from vantage6.algorithm.tools.wrap import wrap_algorithm; wrap_algorithm()"]
