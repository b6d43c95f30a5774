# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# crmon's image: the static binary `make build` makes, and the CA
# certificates the exporters and alert channels verify servers with;
# nothing else. It is built from scratch, so `docker build` pulls nothing:
#
#   make image        # crmon:<version> and crmon:latest
#
# `make image` puts the binary and the build host's
# /etc/ssl/certs/ca-certificates.crt in a context directory (dist/image/)
# and builds this file there. With a registry at hand, the same image comes
# from the source alone in two stages:
#
#   FROM golang:1.26 AS build
#   WORKDIR /src
#   COPY . .
#   RUN CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs -ldflags '-s -w' -o /crmon ./cmd/crmon
#   FROM scratch
#   COPY --from=build /crmon /usr/bin/crmon
#   COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
#   (then the VOLUME, EXPOSE, ENTRYPOINT and CMD below)
#
# Run it as a sidecar with the least privilege it needs:
#
#   docker run -d --name crmon $(cat deploy/docker/sidecar.flags) crmon:latest run
FROM scratch

ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="crmon" \
      org.opencontainers.image.description="Low-overhead resource monitor for Linux CI hosts and containers: eBPF per cgroup, Prometheus /metrics, alerts, test-run reports" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/crmon-dev/crmon" \
      org.opencontainers.image.base.name="scratch"

COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY crmon /usr/bin/crmon

# The local store and the alert state (store.path).
VOLUME ["/var/lib/crmon"]
EXPOSE 9717
ENTRYPOINT ["/usr/bin/crmon"]
CMD ["run"]
