#!/usr/bin/env bash
# Boots a kernel + initrd directly (-kernel/-initrd) under QEMU TCG, with disks on chosen
# storage controllers, and writes the serial console to a log file.
#
# Usage: scripts/qemu.sh --kernel VMLINUZ --initrd INITRD [options] [-- EXTRA QEMU ARGS]
#   --append ARGS        kernel command line (default: console=ttyS0,115200n8 panic=-1)
#   --timeout SECS       kill QEMU after SECS (default 180; exit code 124 then)
#   --machine pc|q35     (default pc)
#   --memory MB          (default 1024)
#   --log FILE           serial log (default out/qemu/serial.log)
#   --disk CTRL:IMAGE[:ADDR[:WWN]]   repeatable; ADDR pins the controller's PCI slot (0xNN → on
#                        -M pc the function is 0000:00:NN.0); WWN (SCSI controllers: 0x5000…)
#                        gives the disk that WWN and lets another --disk share the same image
#                        (two paths to one LUN). CTRL is one of: megasas megasas-gen2 lsi53c895a
#                        pvscsi am53c974 ich9-ahci nvme virtio-blk virtio-scsi qemu-xhci
#                        (usb-storage) usb-uas (qemu-xhci + uas) usb-ehci (ehci + usb-storage)
# Exit code: QEMU's (0 when the guest rebooted or powered off: -no-reboot; a kernel panic with
# panic=-1 also reboots, so read the verdict from the log), 124 on timeout.
# KVM is never used: on this machine kind /dev/kvm exists but cannot run guests.
set -euo pipefail

kernel="" initrd="" append="console=ttyS0,115200n8 panic=-1" timeout_s=180 machine=pc memory=1024
log=out/qemu/serial.log
disks=()
extra=()
die() { echo "qemu.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) kernel=$2; shift 2 ;;
    --initrd) initrd=$2; shift 2 ;;
    --append) append=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --machine) machine=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --disk) disks+=("$2"); shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[ -n "$kernel" ] && [ -f "$kernel" ] || die "--kernel FILE is required"
[ -n "$initrd" ] && [ -f "$initrd" ] || die "--initrd FILE is required"
case "$machine" in pc|q35) ;; *) die "--machine must be pc or q35" ;; esac

args=(-accel tcg -M "$machine" -m "$memory" -nographic -monitor none -nic none -no-reboot
      -kernel "$kernel" -initrd "$initrd" -append "$append")

n=0
for spec in "${disks[@]}"; do
  IFS=: read -r ctrl image addr wwn extra_field <<<"$spec"
  [ -z "${extra_field:-}" ] || die "--disk $spec: expected CTRL:IMAGE[:ADDR[:WWN]]"
  [ -f "$image" ] || die "--disk $spec: no such image $image"
  at=""; [ -z "${addr:-}" ] || at=",addr=$addr"
  fmt=raw; [[ "$image" != *.qcow2 ]] || fmt=qcow2
  lock=""; hd_extra=""
  if [ -n "${wwn:-}" ]; then lock=",file.locking=off"; hd_extra=",wwn=$wwn,share-rw=on"; fi
  args+=(-drive "if=none,id=d$n,file=$image,format=$fmt$lock")
  c="c$n"
  case "$ctrl" in
    megasas|megasas-gen2|lsi53c895a|virtio-scsi|pvscsi|am53c974)
      dev=$ctrl; [ "$ctrl" != virtio-scsi ] || dev=virtio-scsi-pci
      args+=(-device "$dev,id=$c$at" -device "scsi-hd,bus=$c.0,drive=d$n$hd_extra") ;;
    ich9-ahci) args+=(-device "ich9-ahci,id=$c$at" -device "ide-hd,bus=$c.0,drive=d$n") ;;
    nvme) args+=(-device "nvme,serial=rescue$n,drive=d$n$at") ;;
    virtio-blk) args+=(-device "virtio-blk-pci,drive=d$n$at") ;;
    qemu-xhci|usb-storage) args+=(-device "qemu-xhci,id=$c$at" -device "usb-storage,bus=$c.0,drive=d$n") ;;
    usb-uas) args+=(-device "qemu-xhci,id=$c$at" -device "usb-uas,id=u$n,bus=$c.0"
                    -device "scsi-hd,bus=u$n.0,drive=d$n") ;;
    usb-ehci) args+=(-device "usb-ehci,id=$c$at" -device "usb-storage,bus=$c.0,drive=d$n") ;;
    *) die "--disk $spec: unknown controller $ctrl" ;;
  esac
  n=$((n + 1))
done

mkdir -p "$(dirname "$log")"
: >"$log"
args+=(-serial "file:$log")
echo "qemu.sh: serial log $log" >&2
rc=0
timeout --foreground -k 5 "$timeout_s" qemu-system-x86_64 "${args[@]}" "${extra[@]}" </dev/null || rc=$?
[ "$rc" -ne 124 ] || echo "qemu.sh: timed out after ${timeout_s}s" >&2
# With panic=-1 and -no-reboot a kernel panic also ends QEMU with 0: say so.
! grep -aq 'Kernel panic' "$log" || echo "qemu.sh: the guest kernel panicked (see the log)" >&2
echo "$log"
exit "$rc"
