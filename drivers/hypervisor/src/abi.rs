//! Xen ABI types and constants the traits speak, each named after its
//! public header (xen/include/public/...).
//!
//! Only what the traits and their users need. A real implementation builds
//! the hypercall argument structs (`gnttab_copy`, `evtchn_*`) itself; the
//! numbers here are what it must put in them.

/// `domid_t` (xen.h): a domain id.
pub type DomId = u16;
/// `grant_ref_t` (grant_table.h): an index into a domain's grant table.
pub type GrantRef = u32;
/// `evtchn_port_t` (event_channel.h): an event channel port of one domain.
pub type EvtchnPort = u32;

/// `XEN_PAGE_SIZE`: grants, rings and grant copies work in 4 KiB pages.
pub const PAGE_SIZE: usize = 4096;

/// `DOMID_SELF` (xen.h).
pub const DOMID_SELF: DomId = 0x7ff0;

/// `__HYPERVISOR_grant_table_op` (xen.h).
pub const HYPERVISOR_GRANT_TABLE_OP: u32 = 20;
/// `__HYPERVISOR_event_channel_op` (xen.h).
pub const HYPERVISOR_EVENT_CHANNEL_OP: u32 = 32;

/// `GNTTABOP_map_grant_ref` (grant_table.h).
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// `GNTTABOP_unmap_grant_ref` (grant_table.h).
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// `GNTTABOP_setup_table` (grant_table.h).
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// `GNTTABOP_copy` (grant_table.h).
pub const GNTTABOP_COPY: u32 = 5;

/// `GNTCOPY_source_gref` (grant_table.h): `source.u.ref` is a grant
/// reference of `source.domid`, not a local frame number.
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref` (grant_table.h): likewise for `dest`.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `GNTMAP_host_map` (grant_table.h).
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GNTMAP_readonly` (grant_table.h).
pub const GNTMAP_READONLY: u32 = 1 << 2;

/// `EVTCHNOP_bind_interdomain` (event_channel.h).
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// `EVTCHNOP_close` (event_channel.h).
pub const EVTCHNOP_CLOSE: u32 = 3;
/// `EVTCHNOP_send` (event_channel.h).
pub const EVTCHNOP_SEND: u32 = 4;
/// `EVTCHNOP_alloc_unbound` (event_channel.h).
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// `EVTCHNOP_unmask` (event_channel.h).
pub const EVTCHNOP_UNMASK: u32 = 9;

/// The layout of `struct gnttab_copy` on x86-64 (grant_table.h): two
/// `gnttab_copy_ptr` of 16 bytes (`union { grant_ref_t ref; xen_pfn_t gmfn }`
/// at 0, `domid` at 8, `offset` at 10), then `len` at 32, `flags` at 34,
/// `status` at 36; 40 bytes in all. For the platform layer's own struct.
pub mod gnttab_copy_layout {
    pub const SOURCE: usize = 0;
    pub const DEST: usize = 16;
    pub const PTR_DOMID: usize = 8;
    pub const PTR_OFFSET: usize = 10;
    pub const LEN: usize = 32;
    pub const FLAGS: usize = 34;
    pub const STATUS: usize = 36;
    pub const SIZE: usize = 40;
}

/// `enum grant_status`, the `GNTST_*` codes of grant_table.h. Codes Xen
/// adds later arrive as `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrantStatus {
    /// `GNTST_okay` (0).
    Okay,
    /// `GNTST_general_error` (-1).
    GeneralError,
    /// `GNTST_bad_domain` (-2): no such domain.
    BadDomain,
    /// `GNTST_bad_gntref` (-3): no such grant, or not granted to us.
    BadGntref,
    /// `GNTST_bad_handle` (-4).
    BadHandle,
    /// `GNTST_bad_virt_addr` (-5).
    BadVirtAddr,
    /// `GNTST_bad_dev_addr` (-6).
    BadDevAddr,
    /// `GNTST_no_device_space` (-7).
    NoDeviceSpace,
    /// `GNTST_permission_denied` (-8): e.g. writing a read-only grant.
    PermissionDenied,
    /// `GNTST_bad_page` (-9).
    BadPage,
    /// `GNTST_bad_copy_arg` (-10): the copy crosses a page boundary.
    BadCopyArg,
    /// `GNTST_address_too_big` (-11).
    AddressTooBig,
    /// `GNTST_eagain` (-12): not done, try again.
    Eagain,
    /// `GNTST_no_space` (-13): out of handles.
    NoSpace,
    /// Any other code.
    Unknown(i16),
}

impl GrantStatus {
    /// From the `int16_t status` Xen wrote.
    pub const fn from_raw(code: i16) -> Self {
        match code {
            0 => Self::Okay,
            -1 => Self::GeneralError,
            -2 => Self::BadDomain,
            -3 => Self::BadGntref,
            -4 => Self::BadHandle,
            -5 => Self::BadVirtAddr,
            -6 => Self::BadDevAddr,
            -7 => Self::NoDeviceSpace,
            -8 => Self::PermissionDenied,
            -9 => Self::BadPage,
            -10 => Self::BadCopyArg,
            -11 => Self::AddressTooBig,
            -12 => Self::Eagain,
            -13 => Self::NoSpace,
            n => Self::Unknown(n),
        }
    }

    /// The `GNTST_*` code.
    pub const fn to_raw(self) -> i16 {
        match self {
            Self::Okay => 0,
            Self::GeneralError => -1,
            Self::BadDomain => -2,
            Self::BadGntref => -3,
            Self::BadHandle => -4,
            Self::BadVirtAddr => -5,
            Self::BadDevAddr => -6,
            Self::NoDeviceSpace => -7,
            Self::PermissionDenied => -8,
            Self::BadPage => -9,
            Self::BadCopyArg => -10,
            Self::AddressTooBig => -11,
            Self::Eagain => -12,
            Self::NoSpace => -13,
            Self::Unknown(n) => n,
        }
    }

    pub const fn is_okay(self) -> bool {
        matches!(self, Self::Okay)
    }
}

/// `enum xenbus_state` (io/xenbus.h): the `state` node of a split driver's
/// frontend and backend directories. Unknown numbers arrive as `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XenbusState {
    /// 0: `XenbusStateUnknown`; also what a missing node reads as.
    Unknown,
    /// 1.
    Initialising,
    /// 2: the backend is ready for the frontend's ring details.
    InitWait,
    /// 3: the frontend has published its ring details.
    Initialised,
    /// 4.
    Connected,
    /// 5: the device is being shut down.
    Closing,
    /// 6.
    Closed,
    /// 7.
    Reconfiguring,
    /// 8.
    Reconfigured,
    /// Any other number.
    Other(u32),
}

impl XenbusState {
    pub const fn from_raw(n: u32) -> Self {
        match n {
            0 => Self::Unknown,
            1 => Self::Initialising,
            2 => Self::InitWait,
            3 => Self::Initialised,
            4 => Self::Connected,
            5 => Self::Closing,
            6 => Self::Closed,
            7 => Self::Reconfiguring,
            8 => Self::Reconfigured,
            n => Self::Other(n),
        }
    }

    pub const fn to_raw(self) -> u32 {
        match self {
            Self::Unknown => 0,
            Self::Initialising => 1,
            Self::InitWait => 2,
            Self::Initialised => 3,
            Self::Connected => 4,
            Self::Closing => 5,
            Self::Closed => 6,
            Self::Reconfiguring => 7,
            Self::Reconfigured => 8,
            Self::Other(n) => n,
        }
    }

    /// The decimal text written to a `state` node.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "0",
            Self::Initialising => "1",
            Self::InitWait => "2",
            Self::Initialised => "3",
            Self::Connected => "4",
            Self::Closing => "5",
            Self::Closed => "6",
            Self::Reconfiguring => "7",
            Self::Reconfigured => "8",
            // Never written by aggdom; a placeholder keeps this total.
            Self::Other(_) => "0",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_status_round_trips() {
        for code in -20i16..=2 {
            assert_eq!(GrantStatus::from_raw(code).to_raw(), code);
        }
        assert_eq!(GrantStatus::from_raw(-10), GrantStatus::BadCopyArg);
        assert_eq!(GrantStatus::from_raw(-13), GrantStatus::NoSpace);
    }

    #[test]
    fn xenbus_state_round_trips() {
        for n in 0..12 {
            assert_eq!(XenbusState::from_raw(n).to_raw(), n);
        }
        assert_eq!(XenbusState::Connected.as_str(), "4");
    }
}
