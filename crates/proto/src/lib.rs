//! Frame protocols spoken between `swarm-exec-helper` (which runs on the
//! node that hosts the target containers) and the `swarm-exec` CLI.
//!
//! This crate is `std`-only and has no dependencies, because the helper is
//! linked statically and must stay small (it is shipped as a swarm config of
//! at most 500 KB).
//!
//! # Two transports, two framings
//!
//! * [`line`](mod@line): the **logs transport**. The helper runs as a one-shot swarm
//!   service task and writes frames to its own stdout; the CLI reads them back
//!   through `docker service logs`. That path is hostile to raw bytes:
//!
//!   - Docker's `json-file` (and `local`) log drivers split any line longer
//!     than 16 KiB into several log entries, so a long line does not come back
//!     as one line;
//!   - log entries are stored as JSON strings, so invalid UTF-8 is replaced
//!     by U+FFFD and arbitrary binary output would be corrupted;
//!   - a reader may see lines of its own (engine messages, a shell error
//!     printed before the helper started).
//!
//!   So each frame is one short, self-describing, pure-ASCII line
//!   (`sx1 <kind> <target> <seq> <payload>\n`) whose payload is base64, and
//!   whose raw chunk size ([`line::MAX_CHUNK`]) keeps every line far below
//!   16 KiB. A per-process sequence number lets the reader detect lost or
//!   duplicated lines ([`line::SeqCheck`]).
//!
//! * [`frame`]: the **binary duplex framing** for the relay transport (stdin
//!   and stdout over a TCP stream), where the byte stream is reliable and
//!   8-bit clean, so a compact length-prefixed header is enough.
//!
//! [`base64`] is the standard-alphabet, padded base64 used by [`line`](mod@line).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod base64;
pub mod frame;
pub mod line;

mod num;
