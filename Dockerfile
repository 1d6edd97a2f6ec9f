# The hotline daemon in a container.
#
#   docker build -t hotline .
#   docker run --network host -v hotline-data:/var/lib/hotline hotline
#
# Host networking is the sane choice for SIP and RTP: the daemon must see
# callers' real addresses, and publishing 10,000 RTP ports through Docker's
# proxy costs a process per port. Without it, publish 5060/udp, 5060/tcp,
# 8080/tcp and the rtp.ports range, and set sip.advertised_address and
# rtp.advertised_address to the host's address. Mount your own
# /opt/hotline/config to change the configuration; logs go to standard
# output, plain lines (`docker logs`).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
RUN cargo build --release --locked && strip target/release/hotline

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/hotline --shell /usr/sbin/nologin hotline \
 && install -d -o hotline -g hotline -m 750 /var/lib/hotline
COPY --from=build /src/target/release/hotline /opt/hotline/bin/hotline
COPY config /opt/hotline/config
COPY prompts /opt/hotline/prompts
COPY README.md /opt/hotline/README.md
USER hotline
WORKDIR /var/lib/hotline
VOLUME /var/lib/hotline
EXPOSE 5060/udp 5060/tcp 8080/tcp 20000-29999/udp
RUN /opt/hotline/bin/hotline check-config --config /opt/hotline/config/hotline.toml --data-dir /tmp/hotline-check
ENTRYPOINT ["/opt/hotline/bin/hotline"]
CMD ["serve", "--config", "/opt/hotline/config/hotline.toml", "--data-dir", "/var/lib/hotline", "--http-listen", "0.0.0.0:8080"]
