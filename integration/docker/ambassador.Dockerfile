# sidecarkit/ambassador — Vault ambassador: auth, secrets rendered to tmpfs, rotation notifications, API proxy on 127.0.0.1:8200
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
      org.opencontainers.image.title="sidecarkit ambassador" \
      org.opencontainers.image.description="Vault ambassador: auth, secrets rendered to tmpfs, rotation notifications, API proxy on 127.0.0.1:8200"
COPY rootfs/ /
USER 65532:65532
EXPOSE 15100
ENTRYPOINT ["/usr/local/bin/ambassador"]
