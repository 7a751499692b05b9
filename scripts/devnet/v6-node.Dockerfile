# The vantage6 4.15.2 server and node, for the development network only (one image for both).
# Python 3.10 on purpose: vantage6-server 4.15.2 on 3.11 answers HTTP 500 on every endpoint
# ('RuleCollection' object has no attribute 'v_glo'). vantage6-backend-common is not pulled in
# by the others and must be listed.
ARG BASE=python:3.10-slim-bookworm
FROM ${BASE}
# (ARG first: devnet.sh builds this image in parallel with Dockerfile.base; an identical first
# layer built twice at once would leave two sibling cache entries and break the next cache hit)
ARG VANTAGE6_VERSION=4.15.2
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN pip install "vantage6==${VANTAGE6_VERSION}" "vantage6-server==${VANTAGE6_VERSION}" \
        "vantage6-node==${VANTAGE6_VERSION}" "vantage6-backend-common==${VANTAGE6_VERSION}" \
 && python -c "import vantage6.server, vantage6.node; print('vantage6', '${VANTAGE6_VERSION}')"
LABEL org.opencontainers.image.title="v6-node (lancelot dev network)"
