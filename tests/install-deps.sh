#!/bin/sh
# Installs, from Debian's packages, what building and testing fcgiwrap
# (and its Debian package: dpkg-dev, debhelper, lintian; the guest tier:
# qemu, debootstrap) needs.  Run as
# root (or with sudo available).
set -eu
PKGS="autoconf automake make gcc libc6-dev pkg-config libfcgi-dev libsystemd-dev
      libfcgi-bin nginx-light curl python3 python3-pytest systemd clang libclang-rt-14-dev
      git openssl libcgi-pm-perl cgit lighttpd apache2 php-cgi dpkg-dev debhelper lintian
      qemu-system-x86 debootstrap e2fsprogs"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing:$missing"
$SUDO apt-get update -qq
# policy-rc.d-free containers would otherwise start the packaged nginx.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
