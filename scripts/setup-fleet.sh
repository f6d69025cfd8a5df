#!/usr/bin/env bash
# Installs what the fleet test (scripts/fleet-test.sh) needs, idempotently; a second run changes
# nothing and takes about a second:
#   - Debian: libvirt (daemon, QEMU driver, clients, Python binding) and openssl;
#   - a venv at target/fleet-venv with fleet/requirements.txt, pinned by fleet/constraints.txt
#     (Ansible 12.3.0 — the last release for Python 3.11 — and sushy-tools 2.2.0);
#   - Debian's libvirt Python binding made visible inside the venv through a .pth file
#     (libvirt-python on PyPI is source-only: it would need libvirt-dev and a compiler);
#   - libvirt without systemd: its log directory, the libvirt-qemu user and group (Debian's
#     compiled-in default, resolved before qemu.conf is read), and a qemu.conf that runs QEMU as
#     root with no ownership changes and no security driver;
#   - a self-signed certificate for IP 127.0.0.1 (sushy-emulator's TLS: community.general's
#     Redfish modules always speak https).
# Variables: FLEET_VENV (default target/fleet-venv), FLEET_PYTHON (default /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${FLEET_VENV:-target/fleet-venv}
python=${FLEET_PYTHON:-/usr/bin/python3}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo

# --- Debian packages -------------------------------------------------------------------------
APT_PACKAGES=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients python3-libvirt openssl
              python3-venv ovmf qemu-system-x86 ipxe-qemu)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-fleet: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# --- venv with the pinned PyPI packages ------------------------------------------------------
stamp="$venv/.fleet-requirements.sha256"
want=$(cat fleet/requirements.txt fleet/constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup-fleet: creating $venv (ansible, sushy-tools)"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    -r fleet/requirements.txt -c fleet/constraints.txt
  echo "$want" > "$stamp"
fi

# --- Debian's libvirt binding inside the venv ------------------------------------------------
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
binding="$venv/debian-libvirt"
if [ ! -f "$site/debian-libvirt.pth" ] || ! "$venv/bin/python" -c 'import libvirt' 2>/dev/null; then
  echo "setup-fleet: linking Debian's libvirt binding into $venv"
  mkdir -p "$binding"
  for f in /usr/lib/python3/dist-packages/libvirt.py \
           /usr/lib/python3/dist-packages/libvirtmod.cpython-*.so \
           /usr/lib/python3/dist-packages/libvirtaio.py; do
    [ -e "$f" ] && ln -sf "$f" "$binding/"
  done
  realpath "$binding" > "$site/debian-libvirt.pth"
  "$venv/bin/python" -c 'import libvirt' \
    || { echo "setup-fleet: Debian's libvirt binding does not load in $venv" >&2; exit 1; }
fi

# --- libvirt without systemd -----------------------------------------------------------------
[ -d /var/log/libvirt/qemu ] || $SUDO mkdir -p /var/log/libvirt/qemu
getent group libvirt-qemu >/dev/null || $SUDO groupadd --system libvirt-qemu
getent passwd libvirt-qemu >/dev/null \
  || $SUDO useradd --system -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
qemu_conf=/etc/libvirt/qemu.conf
conf_text='# written by esxi-rescue scripts/setup-fleet.sh (libvirt without systemd, QEMU as root)
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"'
if [ "$(cat "$qemu_conf" 2>/dev/null)" != "$conf_text" ]; then
  echo "setup-fleet: writing $qemu_conf"
  if [ -f "$qemu_conf" ] && ! grep -q 'esxi-rescue scripts/setup-fleet.sh' "$qemu_conf"; then
    $SUDO cp -n "$qemu_conf" "$qemu_conf.before-esxi-rescue"
  fi
  $SUDO mkdir -p /etc/libvirt
  printf '%s\n' "$conf_text" | $SUDO tee "$qemu_conf" >/dev/null
fi

# --- self-signed certificate for 127.0.0.1 ---------------------------------------------------
certdir=target/fleet-cert
if ! openssl x509 -in "$certdir/cert.pem" -noout -checkend 86400 >/dev/null 2>&1; then
  echo "setup-fleet: making a self-signed certificate for 127.0.0.1 in $certdir"
  mkdir -p "$certdir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -addext "basicConstraints=critical,CA:TRUE" \
    -keyout "$certdir/key.pem" -out "$certdir/cert.pem" 2>/dev/null
  chmod 600 "$certdir/key.pem"
fi
