#!/bin/sh
# Installs what is missing (Debian), builds fcgiwrap, and serves the CGI
# scripts in examples/cgi-bin through a real nginx on 127.0.0.1.
# Usage: sh examples/demo.sh [PORT]     (Ctrl-C stops both)
set -eu
PORT="${1:-8080}"
cd "$(dirname "$0")/.."
TOP=$(pwd)
sh tests/install-deps.sh
# fcgiwrap refuses scripts writable by group or others (umask 002 checkouts).
chmod go-w examples/cgi-bin/*.sh
[ -x ./fcgiwrap ] || { [ -f Makefile ] || { autoreconf -fi && ./configure -q; }; make -j2 -s; }

RUN=$(mktemp -d /tmp/fcgiwrap-demo.XXXXXX)
mkdir -p "$RUN/nginx"
cat > "$RUN/nginx.conf" <<CONF
daemon off;
master_process off;
user root;
error_log $RUN/nginx/error.log;
pid $RUN/nginx/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $RUN/nginx/body;
    fastcgi_temp_path $RUN/nginx/fastcgi;
    proxy_temp_path $RUN/nginx/proxy;
    uwsgi_temp_path $RUN/nginx/uwsgi;
    scgi_temp_path $RUN/nginx/scgi;
    client_max_body_size 100m;
    server {
        listen 127.0.0.1:$PORT;
        location = / { return 302 /cgi-bin/hello.sh; }
        location /cgi-bin/ {
            gzip off;
            fastcgi_split_path_info ^(/cgi-bin/[^/]+)(/.*)\$;
            fastcgi_param SCRIPT_FILENAME $TOP/examples\$fastcgi_script_name;
            fastcgi_param PATH_INFO \$fastcgi_path_info;
            include /etc/nginx/fastcgi_params;
            fastcgi_pass unix:$RUN/fcgiwrap.sock;
            fastcgi_buffering off;
        }
    }
}
CONF
# A local demo run as root: --allow-root says so.  In production, start it
# with --user (or from the systemd units, which run it as www-data).
./fcgiwrap -s "unix:$RUN/fcgiwrap.sock" --allow-root &
FCGI=$!
/usr/sbin/nginx -p "$RUN/nginx" -c "$RUN/nginx.conf" &
NGINX=$!
cleanup() {
	kill $NGINX $FCGI 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 0' INT TERM
sleep 0.5
echo
echo "fcgiwrap is serving examples/cgi-bin at http://127.0.0.1:$PORT/cgi-bin/hello.sh"
echo "(Ctrl-C to stop)"
wait $FCGI || true
