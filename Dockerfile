# stocksyncd in a container: docker build -t stocksyncd .
# Run: see README ("Docker"). Config at /etc/stocksyncd/config.toml, state in /var/lib/stocksyncd.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stocksyncd ./stocksyncd
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# A fixed uid/gid so volume permissions can be prepared on the host.
RUN groupadd --system --gid 10001 stocksyncd \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/stocksyncd \
    --no-create-home --shell /usr/sbin/nologin stocksyncd \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/stocksyncd /etc/stocksyncd
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

ENV STOCKSYNCD_CONFIG=/etc/stocksyncd/config.toml \
    STOCKSYNCD_DAEMON__STATE_URL=sqlite:////var/lib/stocksyncd/state.db \
    STOCKSYNCD_DAEMON__LOG_FORMAT=text \
    PYTHONUNBUFFERED=1
USER 10001:10001
VOLUME ["/var/lib/stocksyncd", "/etc/stocksyncd"]
# The status page listens on 127.0.0.1:8780 unless web.listen says otherwise
# (a non-loopback address such as 0.0.0.0:8780 requires web.token).
EXPOSE 8780
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["stocksyncd", "check"]
# Exec form: the daemon is PID 1's direct child-free process and receives
# SIGTERM/SIGHUP itself; it drains runs in flight before exiting 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["stocksyncd"]
CMD ["run"]
