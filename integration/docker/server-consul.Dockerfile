# sidecarkit/server-consul — HashiCorp Consul built from source by make testenv, for offline demos; swap for hashicorp/consul where a registry is reachable
# Built by integration/images.sh from a staged root (static binaries, CA
# certificates, /etc/passwd, /tmp); no registry needed.
FROM scratch
ARG VERSION=dev
ARG COMMIT=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.source="https://github.com/sidecarkit/sidecarkit" \
      org.opencontainers.image.url="https://github.com/sidecarkit/sidecarkit" \
      org.opencontainers.image.vendor="sidecarkit" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.title="Consul (sidecarkit test build)" \
      org.opencontainers.image.description="HashiCorp Consul built from source by make testenv, for offline demos; swap for hashicorp/consul where a registry is reachable"
COPY rootfs/ /
USER 65532:65532
EXPOSE 8500
ENTRYPOINT ["/bin/consul"]
