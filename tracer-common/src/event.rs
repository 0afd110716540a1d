//! The header every ring-buffer event starts with, and the stable event kind ids.
//!
//! Kind ids are stable numbers grouped in ranges by instrumented library
//! (`0x01xx`: Go `net/http`); user space dispatches decoding on them.

/// Go `net/http` server span, see [`crate::probes::net_http::server::HttpServerEvent`].
pub const KIND_NET_HTTP_SERVER: u16 = 0x0100;
/// Go `net/http` client span, see [`crate::probes::net_http::client::HttpClientEvent`].
pub const KIND_NET_HTTP_CLIENT: u16 = 0x0101;

/// Version of the event layout; bumped when any event layout changes.
pub const WIRE_VERSION: u16 = 5;

/// First bytes of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// One of the `KIND_*` constants.
    pub kind: u16,
    /// [`WIRE_VERSION`] of the writer.
    pub version: u16,
    /// Size in bytes of the whole record, header included.
    pub size: u32,
    /// Process id (kernel tgid) of the traced process.
    pub pid: u32,
    /// Thread id (kernel pid) that finished the event; informational only.
    pub tid: u32,
    /// Address of the `runtime.g` of the goroutine the event belongs to: constant for a
    /// goroutine's life (stacks move, `g` does not) and free to read (R14).
    pub g: u64,
}
crate::assert_size!(EventHeader, 24);

/// Key of per-goroutine state in kernel maps: goroutines move between threads, so state
/// is never keyed by thread id. A goroutine is named by its `runtime.g` address, which the
/// Go ABI keeps in R14: no memory read, unlike `g.goid`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GoroutineKey {
    pub pid: u32,
    pub _pad: u32,
    pub g: u64,
}
crate::assert_size!(GoroutineKey, 16);

/// Per-CPU state the kernel draws span and trace ids from: ids are a bijective mix
/// (splitmix64) of a per-CPU counter with per-CPU random seeds that user space writes at
/// start, so they are unique and well spread at the cost of a few ALU instructions.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdState {
    /// Seeds of the trace id's two halves and of the span id.
    pub seeds: [u64; 3],
    pub counter: u64,
}
crate::assert_size!(IdState, 32);

/// The splitmix64 finalizer: a bijection on `u64`.
#[inline(always)]
pub const fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One string of a variable-size record, whose strings follow its fixed part one after
/// another in a text area: the length the string had in the target (it may exceed what
/// was kept), where its kept bytes start in the text, and how many were kept.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Piece {
    /// Length of the string in the target, clamped to `u32::MAX`.
    pub len: u32,
    /// Where its bytes start in the text; [`PIECE_FAILED`] when they could not be read.
    pub at: u16,
    /// Bytes kept, at most the field's limit.
    pub kept: u16,
}
crate::assert_size!(Piece, 8);

/// [`Piece::at`] of a string whose header or bytes could not be read.
pub const PIECE_FAILED: u16 = u16::MAX;

impl Piece {
    /// A string that could not be read.
    pub const FAILED: Self = Self {
        len: 0,
        at: PIECE_FAILED,
        kept: 0,
    };

    /// True when the string's header or bytes could not be read.
    pub fn failed(&self) -> bool {
        self.at == PIECE_FAILED
    }

    /// The kept bytes in `text`; empty when unreadable or not within `text`.
    pub fn bytes<'a>(&self, text: &'a [u8]) -> &'a [u8] {
        if self.failed() {
            return &[];
        }
        let start = usize::from(self.at);
        text.get(start..start + usize::from(self.kept))
            .unwrap_or(&[])
    }

    /// True when the target's string was longer than what was kept.
    pub fn truncated(&self) -> bool {
        !self.failed() && self.len > u32::from(self.kept)
    }
}

/// The fixed part of a variable-size record: a `repr(C)` wire type of integers and byte
/// arrays without implicit padding, whose size is a multiple of 8.
///
/// # Safety
/// Implementors must be such a type: [`Record::record`] hands out its bytes.
pub unsafe trait Head: Copy + Default {
    /// The record's header, whose `size` is set once the text's used length is known.
    fn header_mut(&mut self) -> &mut EventHeader;
}

/// A variable-size record as the kernel builds it (in a per-CPU array): the fixed part,
/// then a text where its strings sit one after another, each found by a [`Piece`] of the
/// head. The ring-buffer record is the head and only the used part of the text, so a
/// span takes the size its strings need, not room for each at its limit.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Record<H: Head, const N: usize> {
    pub head: H,
    pub text: [u8; N],
}

impl<H: Head, const N: usize> Record<H, N> {
    /// Appends `s` to the text at `*at`, as the kernel copies a string (at most `keep`
    /// bytes), and returns its piece; for tests and fuzz seeds.
    pub fn put(&mut self, at: &mut usize, keep: usize, s: &[u8]) -> Piece {
        let kept = s.len().min(keep).min(N - *at);
        self.text[*at..*at + kept].copy_from_slice(&s[..kept]);
        let piece = Piece {
            len: s.len().min(u32::MAX as usize) as u32,
            at: *at as u16,
            kept: kept as u16,
        };
        *at += kept;
        piece
    }

    /// The record's size when `used` bytes of the text are used.
    pub const fn record_size(used: usize) -> usize {
        core::mem::size_of::<H>() + used
    }

    /// The record the kernel copies to the ring buffer when `used` bytes of the text are
    /// used: the head and that much text.
    pub fn record(&self, used: usize) -> &[u8] {
        const { assert!(core::mem::size_of::<H>().is_multiple_of(8)) };
        let size = Self::record_size(if used < N { used } else { N });
        // SAFETY: `size` is within `self`: the text starts right after the head, whose
        // size is a multiple of its alignment; every byte of the head is initialised
        // (`Head`), and so is the text.
        unsafe { core::slice::from_raw_parts((self as *const Self).cast::<u8>(), size) }
    }
}

impl<H: Head, const N: usize> Default for Record<H, N> {
    fn default() -> Self {
        Self {
            head: H::default(),
            text: [0; N],
        }
    }
}
