# sidecarkit/injector — the mutating admission webhook that puts sidecarkit helpers into pods
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
      org.opencontainers.image.title="sidecarkit injector" \
      org.opencontainers.image.description="mutating admission webhook that injects the sidecarkit helpers"
COPY rootfs/ /
USER 65532:65532
EXPOSE 9443 15400
ENTRYPOINT ["/usr/local/bin/injector"]
