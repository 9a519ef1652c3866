//! Finding Xen: the hypervisor CPUID leaves 0x40000000.. in steps of 0x100
//! (Xen moves its leaves up when it also emulates another hypervisor's
//! interface), signature "XenVMMXenVMM" in ebx, ecx, edx.

/// Xen's CPUID leaves: where they start and what they report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCpuid {
    /// The leaf with the signature; `base + 2` gives the hypercall page MSR.
    pub base: u32,
    /// Xen's version (leaf base + 1, eax): major << 16 | minor.
    pub version: u32,
}

impl XenCpuid {
    pub fn major(&self) -> u32 {
        self.version >> 16
    }
    pub fn minor(&self) -> u32 {
        self.version & 0xffff
    }
}

/// True if the three signature registers spell "XenVMMXenVMM".
pub fn is_xen_signature(ebx: u32, ecx: u32, edx: u32) -> bool {
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&ecx.to_le_bytes());
    sig[8..12].copy_from_slice(&edx.to_le_bytes());
    &sig == b"XenVMMXenVMM"
}

/// The first base whose signature is Xen's and which has the leaves the
/// platform layer needs (max leaf `eax` >= base + 2). `leaf` runs CPUID.
pub fn find_xen(mut leaf: impl FnMut(u32) -> [u32; 4]) -> Option<XenCpuid> {
    (0x4000_0000u32..0x4001_0000)
        .step_by(0x100)
        .find_map(|base| {
            let [eax, ebx, ecx, edx] = leaf(base);
            (is_xen_signature(ebx, ecx, edx) && eax >= base + 2).then(|| XenCpuid {
                base,
                version: leaf(base + 1)[0],
            })
        })
}

/// CPUID on this CPU: [eax, ebx, ecx, edx].
pub fn cpuid(leaf: u32) -> [u32; 4] {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID is available on every x86-64 CPU and has no side
    // effects; leaves a CPU does not know return harmless values.
    let r = unsafe { core::arch::x86_64::__cpuid(leaf) };
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Detects Xen on the CPU we run on.
pub fn detect() -> Option<XenCpuid> {
    find_xen(cpuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> [u32; 3] {
        let s = b"XenVMMXenVMM";
        let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
        [w(0), w(4), w(8)]
    }

    #[test]
    fn finds_xen_at_the_base_or_moved_up() {
        let [b, c, d] = sig();
        for base in [0x4000_0000u32, 0x4000_0100] {
            let found = find_xen(|leaf| match leaf {
                l if l == base => [base + 5, b, c, d],
                l if l == base + 1 => [(4 << 16) | 17, 0, 0, 0],
                0x4000_0000 => [0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d], // "KVMKVMKVM"
                _ => [0; 4],
            });
            assert_eq!(
                found,
                Some(XenCpuid {
                    base,
                    version: (4 << 16) | 17
                })
            );
            assert_eq!((found.unwrap().major(), found.unwrap().minor()), (4, 17));
        }
    }

    #[test]
    fn no_xen_without_signature_or_leaves() {
        assert_eq!(find_xen(|_| [0; 4]), None);
        let [b, c, d] = sig();
        // Signature but too few leaves.
        assert_eq!(
            find_xen(|l| if l == 0x4000_0000 {
                [0x4000_0001, b, c, d]
            } else {
                [0; 4]
            }),
            None
        );
        assert!(!is_xen_signature(b, d, c));
    }
}
