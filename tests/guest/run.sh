#!/bin/sh
# Runs inside the Debian 12 guest, started at boot by guest-checks.service
# (tests/guest/image.sh) with the second disk mounted on /checks: the
# checks of tests/guest/checks.py, whose results go back to the host in
# /checks/results.json.  The guest powers off when they end, whatever
# happened.
trap 'sync; poweroff -f' EXIT
echo "guest: checks starting"
# The boot first (this unit does not hold it up).
systemctl is-system-running --wait >/dev/null
# /checks/only, if there, names the checks to run (FCGIWRAP_GUEST_ONLY).
python3 /checks/checks.py /checks/results.json $(cat /checks/only 2>/dev/null)
echo "guest: checks ended ($?)"
