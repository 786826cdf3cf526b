# sidecarkit/proxy — traffic sidecar (inbound 15006, outbound 15001, admin 15000) with the initnet capture init step
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
      org.opencontainers.image.title="sidecarkit proxy" \
      org.opencontainers.image.description="traffic sidecar (inbound 15006, outbound 15001, admin 15000) with the initnet capture init step"
COPY rootfs/ /
USER 65532:65532
EXPOSE 15000 15001 15006 15090
ENTRYPOINT ["/usr/local/bin/proxy"]
