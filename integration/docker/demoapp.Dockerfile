# sidecarkit/demoapp — the demo legacy app, its upstream, seeder and client
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
      org.opencontainers.image.title="sidecarkit demoapp" \
      org.opencontainers.image.description="the demo legacy app, its upstream, seeder and client"
COPY rootfs/ /
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/demoapp"]
