//! The network drivers the image carries for `rescue.report=`. Coldplug holds them back: a run
//! without a report URL never loads a NIC driver (no link, no DHCP, nothing listening), so the
//! repair behaves the same whether or not the machine has a network.

/// The common server NIC families (Intel, Broadcom, Mellanox/NVIDIA) and the virtual NICs of
/// QEMU/KVM and VMware. bnx2/bnx2x are left out: they need non-free firmware files.
pub const NIC_MODULES: &[&str] = &[
    "e1000",
    "e1000e",
    "igb",
    "igc",
    "ixgbe",
    "i40e",
    "ice",
    "bnxt_en",
    "tg3",
    "mlx5_core",
    "virtio_net",
    "vmxnet3",
];

pub fn is_nic_module(name: &str) -> bool {
    let name = name.replace('-', "_");
    NIC_MODULES.contains(&name.as_str())
}
