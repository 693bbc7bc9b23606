//! Request outcomes by status: what one request ended with (`Status`: an
//! HTTP status code, a gRPC code, or a transport failure), the per-worker
//! tally (`StatusCounts`), and the breakdown the report prints
//! (`200=9812 429=12 io=3`).

use std::collections::BTreeMap;
use std::io::ErrorKind;

use tonic::Code;

/// The outcome of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// The HTTP status code of an answer (REST scenarios; also a gRPC call
    /// answered with an HTTP status other than 200).
    Http(u16),
    /// The gRPC status of a call (gRPC scenarios).
    Grpc(Code),
    /// No usable answer; one of the labels in [`Status::io`],
    /// [`Status::h2`], or `connect` (a gRPC worker could not connect),
    /// `bad-response` (an answer that cannot be read or is not the one
    /// asked for), `encode` (a gRPC request that could not be built).
    Transport(&'static str),
}

impl Status {
    /// The status of a successful REST request.
    pub(crate) const HTTP_OK: Status = Status::Http(200);
    /// The status of a successful gRPC call.
    pub(crate) const GRPC_OK: Status = Status::Grpc(Code::Ok);
    /// An answer that cannot be read, or is not the one asked for.
    pub(crate) const BAD_RESPONSE: Status = Status::Transport("bad-response");

    /// A transport failure by its kind: `timeout`, `refused` (connection
    /// refused), `closed` (the peer closed or reset the connection),
    /// `bad-response` (not HTTP), else `io`.
    pub(crate) fn io(e: &std::io::Error) -> Self {
        Status::Transport(match e.kind() {
            ErrorKind::TimedOut => "timeout",
            ErrorKind::ConnectionRefused => "refused",
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe => "closed",
            ErrorKind::InvalidData => "bad-response",
            _ => "io",
        })
    }

    /// An HTTP/2 failure: its I/O error as in [`Status::io`], `reset` for a
    /// stream reset or GOAWAY from the server, else `h2`.
    pub(crate) fn h2(e: &h2::Error) -> Self {
        match e.get_io() {
            Some(io) => Status::io(io),
            None if e.is_reset() || e.is_go_away() => Status::Transport("reset"),
            None => Status::Transport("h2"),
        }
    }

    /// The label the report shows: `200`, `UNAVAILABLE`, `io`, ….
    pub(crate) fn label(self) -> String {
        match self {
            Status::Http(code) => code.to_string(),
            Status::Grpc(code) => grpc_code_name(code).to_owned(),
            Status::Transport(label) => label.to_owned(),
        }
    }
}

/// A gRPC code's canonical name, as in the gRPC spec (`UNAVAILABLE`).
pub(crate) fn grpc_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One worker's requests by status. A worker sees a handful of distinct
/// statuses, so a short list scanned per request (no allocation, no
/// hashing) beats a map.
#[derive(Debug, Default, Clone)]
pub(crate) struct StatusCounts(Vec<(Status, u64)>);

impl StatusCounts {
    pub(crate) fn add(&mut self, status: Status) {
        match self.0.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.0.push((status, 1)),
        }
    }

    /// Requests counted.
    pub(crate) fn total(&self) -> u64 {
        self.0.iter().map(|(_, n)| n).sum()
    }
}

/// The workers' counts summed by label, sorted by label (HTTP codes first,
/// then gRPC names, then the transport labels).
pub(crate) fn breakdown<'a>(
    counts: impl IntoIterator<Item = &'a StatusCounts>,
) -> BTreeMap<String, u64> {
    let mut by_label = BTreeMap::new();
    for (status, n) in counts.into_iter().flat_map(|c| c.0.iter()) {
        *by_label.entry(status.label()).or_insert(0) += n;
    }
    by_label
}

/// The text form of a breakdown: `200=9812 429=12 io=3` (`none` when no
/// request was made).
pub(crate) fn format_breakdown(by_label: &BTreeMap<String, u64>) -> String {
    if by_label.is_empty() {
        return "none".to_owned();
    }
    by_label
        .iter()
        .map(|(label, n)| format!("{label}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_http_codes_grpc_codes_and_transport_failures() {
        assert_eq!(Status::Http(429).label(), "429");
        assert_eq!(Status::HTTP_OK.label(), "200");
        assert_eq!(Status::GRPC_OK.label(), "OK");
        assert_eq!(Status::Grpc(Code::Unavailable).label(), "UNAVAILABLE");
        assert_eq!(
            Status::Grpc(Code::from_bytes(b"4")).label(),
            "DEADLINE_EXCEEDED"
        );
        assert_eq!(Status::BAD_RESPONSE.label(), "bad-response");
        let io = |kind: ErrorKind| Status::io(&kind.into()).label();
        assert_eq!(io(ErrorKind::TimedOut), "timeout");
        assert_eq!(io(ErrorKind::ConnectionRefused), "refused");
        assert_eq!(io(ErrorKind::UnexpectedEof), "closed");
        assert_eq!(io(ErrorKind::ConnectionReset), "closed");
        assert_eq!(io(ErrorKind::InvalidData), "bad-response");
        assert_eq!(io(ErrorKind::PermissionDenied), "io");
    }

    #[test]
    fn the_breakdown_sums_the_workers_by_label() {
        let mut a = StatusCounts::default();
        for _ in 0..3 {
            a.add(Status::HTTP_OK);
        }
        a.add(Status::Http(429));
        a.add(Status::Transport("io"));
        let mut b = StatusCounts::default();
        b.add(Status::Transport("io"));
        b.add(Status::HTTP_OK);
        b.add(Status::Http(503));
        assert_eq!(a.total(), 5);
        assert_eq!(b.total(), 3);
        let by_label = breakdown([&a, &b]);
        assert_eq!(
            by_label
                .iter()
                .map(|(l, n)| (l.as_str(), *n))
                .collect::<Vec<_>>(),
            [("200", 4), ("429", 1), ("503", 1), ("io", 2)]
        );
        assert_eq!(format_breakdown(&by_label), "200=4 429=1 503=1 io=2");
        assert_eq!(format_breakdown(&BTreeMap::new()), "none");
    }

    #[test]
    fn grpc_names_sort_before_transport_labels() {
        let mut c = StatusCounts::default();
        c.add(Status::Transport("connect"));
        c.add(Status::Grpc(Code::Unavailable));
        c.add(Status::GRPC_OK);
        c.add(Status::GRPC_OK);
        assert_eq!(
            format_breakdown(&breakdown([&c])),
            "OK=2 UNAVAILABLE=1 connect=1"
        );
    }
}
