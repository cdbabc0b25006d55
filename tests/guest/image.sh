#!/bin/sh
# Makes the Debian 12 guest of the guest tier (tests/test_guest.py), or
# finds it in the cache: a root file system by debootstrap from Debian's
# archive, as ext4 image, with the kernel and initramfs beside it.
#   tests/guest/image.sh CACHE_DIR
# prints the directory holding root.img, vmlinuz, initrd.img and Debian's
# fcgiwrap_1.1.0-*.deb.  The
# image is named by a hash of this file: a changed recipe makes a new one
# (and the old ones are removed).  The guest boots read-only from it
# (qemu -snapshot), so one image serves every run.
#
# What it holds: systemd as PID 1, nginx-light, curl, python3 with pytest
# (the checks), Debian's own fcgiwrap 1.1.0 installed and enabled as a
# Debian admin has it (its example nginx.conf included in nginx's default
# site), and no procps: a minimal Debian has no /bin/kill, which the
# units must not need.  A unit runs /checks/run.sh from the second disk
# at boot and powers the guest off when it ends.
set -eu
cache=${1:?usage: image.sh CACHE_DIR}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=systemd,systemd-sysv,udev,dbus,nginx-light,curl,fcgiwrap,linux-image-amd64,python3,python3-pytest,e2fsprogs
key=$(sha256sum "$0" | cut -c1-16)
dir=$cache/bookworm-$key
mkdir -p "$cache"
# One maker at a time; the others wait and find its image.
exec 9>"$cache/lock"
flock 9
if [ -f "$dir/done" ]; then
	echo "$dir"
	exit 0
fi
for old in "$cache"/bookworm-*; do
	[ -e "$old" ] && [ "$old" != "$dir" ] && rm -rf "$old"
done
rm -rf "$dir"
mkdir -p "$dir"
root=$dir/tree
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" >"$dir/debootstrap.log" 2>&1 || {
	tail -n 20 "$dir/debootstrap.log" >&2
	exit 1
}

# Debian's fcgiwrap as its README.Debian says: nginx includes the example.
sed -i 's|^\(\s*location / {\)|\tinclude /usr/share/doc/fcgiwrap/examples/nginx.conf;\n\1|' \
	"$root/etc/nginx/sites-available/default"
grep -q "examples/nginx.conf" "$root/etc/nginx/sites-available/default"
mkdir -p "$root/usr/lib/cgi-bin"
cat >"$root/usr/lib/cgi-bin/hello.sh" <<'CGI'
#!/bin/sh
printf 'Content-Type: text/plain\n\nhello from %s\n' "$SERVER_SOFTWARE"
CGI
chmod 755 "$root/usr/lib/cgi-bin/hello.sh"

echo fcgiwrap-guest >"$root/etc/hostname"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
# No login prompt, no waiting for a network that is not there.
ln -sf /dev/null "$root/etc/systemd/system/getty@.service"
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@.service"
ln -sf /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"
mkdir -p "$root/checks"
cat >"$root/etc/systemd/system/guest-checks.service" <<'UNIT'
[Unit]
Description=fcgiwrap guest checks (tests/guest/run.sh, from the second disk)
# run.sh powers the guest off itself; these if it cannot.
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Service]
# Not oneshot: the boot must finish while the checks run (they wait
# for it).
Type=simple
ExecStart=/bin/sh -c 'mount /dev/vdb /checks && exec /bin/sh /checks/run.sh'
StandardOutput=journal+console
StandardError=journal+console
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/guest-checks.service "$root/etc/systemd/system/multi-user.target.wants/guest-checks.service"
# Apt must never reach for a network in the guest.
rm -f "$root/etc/apt/sources.list"
: >"$root/etc/apt/sources.list"

cp -L "$root/vmlinuz" "$dir/vmlinuz"
cp -L "$root/initrd.img" "$dir/initrd.img"
# Debian's 1.1.0 package, to install again after ours is removed.
cp "$root"/var/cache/apt/archives/fcgiwrap_1.1.0-*.deb "$dir/"
rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*_Packages
mkfs.ext4 -q -F -L guest-root -d "$root" "$dir/root.img" 3G
rm -rf "$root"
touch "$dir/done"
echo "$dir"
