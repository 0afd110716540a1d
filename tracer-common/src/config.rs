//! Per-binary configuration the kernel programs read: the struct field offsets resolved in
//! user space from the target binary. One slot per loaded binary, selected by the uprobe's
//! attach cookie, so no offset is ever a literal in kernel code.

/// Offset value meaning "this field does not exist in this Go version".
pub const NO_FIELD: u32 = u32::MAX;

/// Maximum number of binaries (configuration slots) traced at once.
/// [`ProbeConfig::sampling`]: every trace is sampled (ratio 1).
pub const SAMPLE_ALL: u32 = 1;
/// [`ProbeConfig::sampling`]: a caller's decision does not count (a sampler that is not
/// parent-based).
pub const SAMPLE_IGNORE_CALLER: u32 = 2;

pub const MAX_CONFIGS: u32 = 256;

/// Field offsets (bytes) inside Go runtime and `net/http` structs of one binary.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// `runtime.g.goid`.
    pub g_goid: u32,
    /// `net/http.Request.Method` (string).
    pub req_method: u32,
    /// `net/http.Request.RequestURI` (string).
    pub req_request_uri: u32,
    /// `net/http.Request.ProtoMajor` (int).
    pub req_proto_major: u32,
    /// `net/http.Request.ProtoMinor` (int).
    pub req_proto_minor: u32,
    /// `net/http.Request.Host` (string).
    pub req_host: u32,
    /// `net/http.Request.RemoteAddr` (string).
    pub req_remote_addr: u32,
    /// `net/http.Request.TLS` (*tls.ConnectionState).
    pub req_tls: u32,
    /// `net/http.Request.Pattern` (string, Go 1.23+), else [`NO_FIELD`].
    pub req_pattern: u32,
    /// `net/http.response.status` (int).
    pub resp_status: u32,
    /// `net/http.Request.Header` (a `map[string][]string`).
    pub req_header: u32,
    /// Layout of that map, see [`HeaderMapLayout`].
    pub header_map: HeaderMapLayout,
    /// Bytes of `net/http.Request` read at once (covers every field above, a multiple of
    /// 8, at most [`WINDOW_BYTES`]).
    pub req_window: u32,
    /// `net/http.Request.URL` (*url.URL), for client spans.
    pub req_url: u32,
    /// `net/url.URL.Scheme` (string).
    pub url_scheme: u32,
    /// `net/url.URL.Host` (string).
    pub url_host: u32,
    /// `net/url.URL.Path` (string).
    pub url_path: u32,
    /// `net/url.URL.RawQuery` (string).
    pub url_raw_query: u32,
    /// Bytes of `net/url.URL` read at once.
    pub url_window: u32,
    /// `net/http.Response.StatusCode` (int).
    pub resp_status_code: u32,
    /// `runtime.g.parentGoid` (Go 1.21+), else [`NO_FIELD`].
    pub g_parent_goid: u32,
    /// Non-zero when client spans are traced: server spans then also record their
    /// goroutine id, so that client calls on goroutines they start find them.
    pub link_goroutines: u32,
    /// `net/http.Request.ctx` (a `context.Context` interface), else [`NO_FIELD`].
    pub req_ctx: u32,
    /// Non-zero when goroutine creations are followed (`--track-goroutines`): client calls
    /// then look for their goroutine in the goroutine tree of server spans.
    pub track_goroutines: u32,
    /// Non-zero when outgoing requests get a `traceparent` header (injection is on for
    /// this binary: not `--read-only`, allowed by the kernel, and every item below known).
    pub inject: u32,
    /// `bufio.Writer.err` (error), `.buf` ([]byte) and `.n` (int), and the bytes of a
    /// `bufio.Writer` read at once.
    pub bufio_err: u32,
    pub bufio_buf: u32,
    pub bufio_n: u32,
    pub bufio_window: u32,
    /// How a trace's sampling is decided: `SAMPLE_*` bits.
    pub sampling: u32,
    /// HTTP/2 (the server bundled in net/http): the response writer's `rws` (a pointer to
    /// its state), else [`NO_FIELD`].
    pub h2_rws: u32,
    /// A trace without a caller's decision is sampled when the last 8 bytes of its id,
    /// big-endian, are below this (the user-space sampler's rule).
    pub sample_below: u64,
    /// Address of `bufio.(*Writer).Write` in the binary: an `io.Writer` whose itab has this
    /// method is a `*bufio.Writer`. 0 when unknown.
    pub bufio_write: u64,
    /// In a position-independent executable, the address in the binary of the injection
    /// probe's instruction: the load bias of the process is then the hit's instruction
    /// pointer minus this, rounded down to a page (the bias is page-aligned; the pointer
    /// may be one past the breakpoint). 0 in a position-dependent executable (no bias).
    pub inject_site: u64,
    /// HTTP/2: the response writer state's `status` (int), else [`NO_FIELD`].
    pub h2_status: u32,
    /// Non-zero when every event wakes the reader up (as other tracers do, for the bench's
    /// comparison); else events are submitted without wake-ups and drained on a timer.
    pub wake_up: u32,
    /// Injection: the TCP connection a request is written to.
    pub conn: ConnLayout,
}
crate::assert_size!(
    ProbeConfig,
    4 * 11 + 64 + 4 * 12 + 4 * 7 + 3 * 8 + 8 + size_of::<ConnLayout>()
);

/// The way from the `*bufio.Writer` a `net/http` transport writes a request into to the
/// ports of its TCP connection: the writer's `wr` is a `persistConnWriter` (one pointer,
/// to its `*persistConn`), whose `conn` is a `*net.TCPConn` (which embeds `net.conn`, a
/// `*netFD`), whose `laddr` and `raddr` are `*net.TCPAddr`s. Interface values are
/// recognised by their itab's first method.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLayout {
    /// `bufio.Writer.wr` (io.Writer), in the writer's window.
    pub writer_wr: u32,
    /// `net/http.persistConn.conn` (net.Conn).
    pub pconn_conn: u32,
    /// `net.conn.fd` (*net.netFD); `net.TCPConn` is one `net.conn`.
    pub conn_fd: u32,
    /// `net.netFD.laddr` and `.raddr` (net.Addr).
    pub fd_laddr: u32,
    pub fd_raddr: u32,
    /// `net.TCPAddr.Port` (int).
    pub addr_port: u32,
    /// Addresses in the binary of `net/http.persistConnWriter.Write` (the `io.Writer`
    /// itab's method of a `persistConnWriter`) and `net.(*TCPConn).Close` (the `net.Conn`
    /// itab's first method of a `*net.TCPConn`).
    pub pconn_write: u64,
    pub tcp_close: u64,
}
crate::assert_size!(ConnLayout, 6 * 4 + 2 * 8);

impl ConnLayout {
    /// Every member absent.
    pub const fn empty() -> Self {
        Self {
            writer_wr: NO_FIELD,
            pconn_conn: NO_FIELD,
            conn_fd: NO_FIELD,
            fd_laddr: NO_FIELD,
            fd_raddr: NO_FIELD,
            addr_port: NO_FIELD,
            pconn_write: 0,
            tcp_close: 0,
        }
    }
}

/// [`HeaderMapLayout::kind`]: the binary's maps are Go's original hash maps (Go <= 1.23,
/// or later with `GOEXPERIMENT=noswissmap`); see <https://go.dev/src/runtime/map.go>.
pub const MAP_BUCKETS: u32 = 1;
/// [`HeaderMapLayout::kind`]: the binary's maps are swiss tables (Go >= 1.24); see
/// <https://go.dev/src/internal/runtime/maps/map.go>.
pub const MAP_SWISS: u32 = 2;

/// Where things are in a Go `map[string][]string`, for a bounded scan of every slot (the
/// hash seed is random, so keys cannot be hashed to their slot). Both layouts store slots
/// in groups (buckets) of 8 that start with 8 control bytes, one per slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderMapLayout {
    /// 0 (unknown: headers are not read), [`MAP_BUCKETS`] or [`MAP_SWISS`].
    pub kind: u32,
    /// Bytes of the map header read at once.
    pub header_window: u32,
    /// Buckets: `hmap.B` (a byte). Swiss: `Map.dirLen`.
    pub size_field: u32,
    /// Buckets: `hmap.buckets`. Swiss: `Map.dirPtr`.
    pub groups_field: u32,
    /// Buckets: `hmap.oldbuckets`. Swiss: unused.
    pub old_groups_field: u32,
    /// Swiss: bytes of a `table` read at once; offsets of `table.groups.data` and
    /// `table.groups.lengthMask`.
    pub table_window: u32,
    pub table_groups: u32,
    pub table_mask: u32,
    /// Size of a group (bucket).
    pub group_size: u32,
    /// Offset of slot 0's key in a group, and the distance between keys.
    pub key_offset: u32,
    pub key_stride: u32,
    /// Offset of slot 0's value in a group, and the distance between values.
    pub value_offset: u32,
    pub value_stride: u32,
    /// Buckets: offset of the overflow pointer. Swiss: unused.
    pub overflow: u32,
    /// Number of entries: buckets `hmap.count`, swiss `Map.used` (an empty map is not
    /// scanned).
    pub count_field: u32,
    pub _pad: u32,
}
crate::assert_size!(HeaderMapLayout, 64);

/// Size of the per-CPU buffers a struct is copied into before its fields are picked out:
/// one read per struct instead of one per field.
pub const WINDOW_BYTES: u32 = 512;

impl ProbeConfig {
    /// A configuration with every field absent.
    pub const fn empty() -> Self {
        Self {
            g_goid: NO_FIELD,
            req_method: NO_FIELD,
            req_request_uri: NO_FIELD,
            req_proto_major: NO_FIELD,
            req_proto_minor: NO_FIELD,
            req_host: NO_FIELD,
            req_remote_addr: NO_FIELD,
            req_tls: NO_FIELD,
            req_pattern: NO_FIELD,
            resp_status: NO_FIELD,
            req_header: NO_FIELD,
            header_map: HeaderMapLayout {
                kind: 0,
                header_window: 0,
                size_field: 0,
                groups_field: 0,
                old_groups_field: 0,
                table_window: 0,
                table_groups: 0,
                table_mask: 0,
                group_size: 0,
                key_offset: 0,
                key_stride: 0,
                value_offset: 0,
                value_stride: 0,
                overflow: 0,
                count_field: 0,
                _pad: 0,
            },
            req_window: 0,
            req_url: NO_FIELD,
            url_scheme: NO_FIELD,
            url_host: NO_FIELD,
            url_path: NO_FIELD,
            url_raw_query: NO_FIELD,
            url_window: 0,
            resp_status_code: NO_FIELD,
            g_parent_goid: NO_FIELD,
            link_goroutines: 0,
            req_ctx: NO_FIELD,
            track_goroutines: 0,
            inject: 0,
            bufio_err: NO_FIELD,
            bufio_buf: NO_FIELD,
            bufio_n: NO_FIELD,
            bufio_window: 0,
            sampling: SAMPLE_ALL,
            h2_rws: NO_FIELD,
            sample_below: u64::MAX,
            bufio_write: 0,
            inject_site: 0,
            h2_status: NO_FIELD,
            wake_up: 0,
            conn: ConnLayout::empty(),
        }
    }
}
