# syntax=docker/dockerfile:1
#
# Serein container image.
#   docker build -t serein:dev .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=postgres://… serein:dev            # serve
#   docker run --rm -e DATABASE_URL=postgres://… serein:dev migrate                  # migrate
#   docker build --target symbols --output type=local,dest=./symbols .             # debug symbols
#
# Builds need no database: compile-checked queries read the committed `.sqlx/` (SQLX_OFFLINE).
# The runtime image is distroless (no shell, no package manager) and runs as uid 65532.

# ---- build ------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
COPY . .
# Cache mounts keep the registry and target/ between builds (BuildKit); the binary is copied out
# of the cached target/ because cache mounts are not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin serein \
 && install -D -m 0755 target/release/serein /out/serein.full
# The release profile keeps line tables (readable backtraces and profiles). The shipped binary
# keeps its symbol table (function names in backtraces and `perf`) but not the line tables:
# 104 MB → 30 MB, measured on commit d96fdf9. The line tables go to a separate file (22 MB,
# compressed) that the binary names with its CRC (`.gnu_debuglink`). Export it with the
# `symbols` target (below) and keep it next to the image tag: `gdb`, `perf report` and
# `addr2line` find it through the debuglink when it sits beside the binary or under
# /usr/lib/debug.
RUN objcopy --only-keep-debug --compress-debug-sections=zlib /out/serein.full /out/serein.debug \
 && objcopy --strip-debug --add-gnu-debuglink=/out/serein.debug /out/serein.full /out/serein \
 && rm /out/serein.full

# ---- symbols (not shipped) --------------------------------------------------------------------
#   docker build --target symbols --output type=local,dest=./symbols .
# writes ./symbols/serein.debug for the image built from the same commit.
FROM scratch AS symbols
COPY --from=builder /out/serein.debug /serein.debug

# ---- runtime ----------------------------------------------------------------------------------
# cc: glibc + libgcc (Rust's std needs them); same Debian release as the builder.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="serein" \
      org.opencontainers.image.description="Multi-tenant employee mental-health platform backend" \
      org.opencontainers.image.licenses="UNLICENSED"
COPY --from=builder /out/serein /usr/local/bin/serein
# Example tenant files, NOT applied by default: SEREIN_TENANTS_DIR defaults to the relative
# "tenants", which does not exist in the working directory (/home/nonroot). To apply them:
#   -e SEREIN_TENANTS_DIR=/usr/share/serein/tenants
# The Helm chart mounts real tenant files from a ConfigMap instead.
COPY --chown=0:0 tenants/ /usr/share/serein/tenants/
# glibc keeps freed Argon2 buffers (19 MiB per password hash) in per-thread arenas: without
# this, resident memory climbs to ~0.5 GiB after a burst of logins and stays there (measured,
# bench/RESULTS.md). Large blocks are mmapped and returned to the system when freed.
ENV MALLOC_MMAP_THRESHOLD_=1048576
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/serein"]
CMD ["serve"]
