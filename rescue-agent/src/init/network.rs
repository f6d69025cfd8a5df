//! Just enough network for one report: bring an interface up and give it an address, with
//! busybox's `ip` and `udhcpc` (in the image beside the agent). Every step ends at a deadline;
//! child processes that overrun it are killed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::net_config::NetConfig;

pub const BUSYBOX: &str = "/bin/busybox";
const DHCP_SCRIPT: &str = "/run/rescue-udhcpc.sh";

/// udhcpc calls this with `bound`/`renew` and the lease in its environment (`$ip`, `$mask` as a
/// prefix length, `$router`, `$dns`); busybox's own example script is not in the image.
pub const DHCP_SCRIPT_TEXT: &str = r#"#!/bin/sh
case "$1" in
  deconfig) /bin/busybox ip addr flush dev "$interface"; /bin/busybox ip link set dev "$interface" up ;;
  bound|renew)
    /bin/busybox ip addr flush dev "$interface"
    /bin/busybox ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do /bin/busybox ip route add default via "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done ;;
esac
exit 0
"#;

/// Network interfaces backed by a device (not `lo`, not virtual), in name order.
pub fn hardware_interfaces(sys: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(sys.join("class/net"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().join("device").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `carrier` reads 1 once the link is up (and fails while the interface is down).
pub fn has_carrier(sys: &Path, name: &str) -> bool {
    std::fs::read_to_string(sys.join("class/net").join(name).join("carrier"))
        .is_ok_and(|s| s.trim() == "1")
}

/// Runs `busybox ARGS`, killed at `deadline`; Ok when it exits 0.
pub fn busybox(args: &[&str], deadline: Instant) -> Result<(), String> {
    run_until(BUSYBOX, args, deadline)
}

/// Runs `program ARGS`, killed at `deadline`; Ok when it exits 0.
pub fn run_until(program: &str, args: &[&str], deadline: Instant) -> Result<(), String> {
    let what = args.join(" ");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{program} {what}: {e}"))?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{what}: {status}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what}: out of time"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

/// Brings the interfaces up and gives one an address; returns its name.
pub fn configure(sys: &Path, config: &NetConfig, deadline: Instant) -> Result<String, String> {
    if !Path::new(BUSYBOX).exists() {
        return Err(format!("{BUSYBOX} is not in this image: no network"));
    }
    // NICs registered by the drivers just loaded can take a moment to appear.
    let mut names = Vec::new();
    let appear_by = deadline.min(Instant::now() + Duration::from_secs(10));
    while names.is_empty() && Instant::now() < appear_by {
        names = hardware_interfaces(sys);
        if names.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    if names.is_empty() {
        return Err("no network interface (no NIC driver in this image bound)".into());
    }
    for n in &names {
        let _ = busybox(&["ip", "link", "set", "dev", n, "up"], deadline);
    }
    let carrier_by = deadline.min(Instant::now() + Duration::from_secs(8));
    let mut linked: Vec<&String> = Vec::new();
    while Instant::now() < carrier_by {
        linked = names.iter().filter(|n| has_carrier(sys, n)).collect();
        if !linked.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if linked.is_empty() {
        return Err(format!("no link on {}", names.join(", ")));
    }
    match config {
        NetConfig::Dhcp => {
            write_dhcp_script().map_err(|e| format!("{DHCP_SCRIPT}: {e}"))?;
            let mut tried = Vec::new();
            for n in linked {
                // -n: give up instead of going to the background; -q: quit once bound.
                let args = [
                    "udhcpc",
                    "-i",
                    n,
                    "-f",
                    "-q",
                    "-n",
                    "-t",
                    "4",
                    "-T",
                    "2",
                    "-A",
                    "1",
                    "-s",
                    DHCP_SCRIPT,
                ];
                let per_interface = deadline.min(Instant::now() + Duration::from_secs(15));
                match busybox(&args, per_interface) {
                    Ok(()) => return Ok(n.clone()),
                    Err(e) => tried.push(format!("{n}: {e}")),
                }
            }
            Err(format!("no DHCP lease ({})", tried.join("; ")))
        }
        NetConfig::Static {
            address,
            prefix,
            gateway,
            dns,
        } => {
            let n = linked[0].as_str();
            busybox(
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{address}/{prefix}"),
                    "dev",
                    n,
                ],
                deadline,
            )?;
            if let Some(g) = gateway {
                busybox(
                    &[
                        "ip",
                        "route",
                        "add",
                        "default",
                        "via",
                        &g.to_string(),
                        "dev",
                        n,
                    ],
                    deadline,
                )?;
            }
            if let Some(d) = dns {
                let _ = std::fs::write("/etc/resolv.conf", format!("nameserver {d}\n"));
            }
            Ok(n.to_string())
        }
    }
}

fn write_dhcp_script() -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = PathBuf::from(DHCP_SCRIPT);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::create_dir_all("/etc");
    std::fs::write(&path, DHCP_SCRIPT_TEXT)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::testutil::TempDir;

    #[test]
    fn only_device_backed_interfaces_in_order() {
        let sys = TempDir::new("net");
        sys.mkdir("devices/pci0000:00/0000:00:03.0");
        sys.symlink("class/net/lo/.keep", "x");
        sys.symlink(
            "class/net/eth1/device",
            "../../../devices/pci0000:00/0000:00:03.0",
        );
        sys.symlink(
            "class/net/eth0/device",
            "../../../devices/pci0000:00/0000:00:03.0",
        );
        sys.mkdir("class/net/bond0");
        assert_eq!(hardware_interfaces(sys.path()), ["eth0", "eth1"]);
        sys.write("class/net/eth0/carrier", "1\n");
        assert!(has_carrier(sys.path(), "eth0"));
        assert!(!has_carrier(sys.path(), "eth1"));
    }

    #[test]
    fn the_dhcp_script_runs_under_a_shell() {
        // The script must at least parse: `sh -n` on the build machine's shell.
        let dir = TempDir::new("udhcpc");
        let p = dir.write("s.sh", DHCP_SCRIPT_TEXT);
        let ok = Command::new("sh").arg("-n").arg(&p).status().unwrap();
        assert!(ok.success());
    }

    #[test]
    fn a_child_past_its_deadline_is_killed() {
        let t = Instant::now();
        let r = run_until("sleep", &["10"], t + Duration::from_millis(300));
        assert!(r.unwrap_err().contains("out of time"));
        assert!(t.elapsed() < Duration::from_secs(3));
        assert_eq!(run_until("true", &[], t + Duration::from_secs(5)), Ok(()));
        assert!(run_until("false", &[], t + Duration::from_secs(5)).is_err());
    }
}
