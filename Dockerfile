# voxgate's container image: `voxgate serve` on 0.0.0.0:8080 as a non-root user.
#
#   docker build -t voxgate .
#   docker run --rm -p 8080:8080 -e VOXGATE_SKILL_ID=amzn1.ask.skill.… \
#     -e VOXGATE_KMS_KEY_ID=alias/voxgate -e VOXGATE_DATABASE_URL=postgres://… voxgate
#
# The entry point is `voxgate`, and `serve` its default command, so the same image runs the
# operator commands too (`docker run … voxgate tenant list`, or a one-off ECS task whose
# command is ["tenant", "list"]). deploy/service.yaml runs it on ECS Fargate.

# Build with the locked dependencies, the same toolchain the test command uses.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin voxgate \
 && install -m 0755 target/release/voxgate /usr/local/bin/voxgate

FROM debian:bookworm-slim
# ca-certificates for HTTPS to AWS and Amazon's signing certificates; curl for HEALTHCHECK.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
# /var/lib/voxgate holds the audit checkpoint file (and SQLite, if used without PostgreSQL).
RUN groupadd --system --gid 10001 voxgate \
 && useradd --system --uid 10001 --gid voxgate --home-dir /var/lib/voxgate --shell /usr/sbin/nologin voxgate \
 && install -d -o voxgate -g voxgate -m 0750 /var/lib/voxgate
COPY --from=build /usr/local/bin/voxgate /usr/local/bin/voxgate
USER 10001:10001
WORKDIR /var/lib/voxgate
VOLUME /var/lib/voxgate
ENV VOXGATE_LISTEN=0.0.0.0:8080 \
    VOXGATE_AUDIT_CHECKPOINT_FILE=/var/lib/voxgate/voxgate.audit-checkpoints
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["voxgate"]
CMD ["serve"]
