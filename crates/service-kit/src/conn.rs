//! One socket wrapper for the servers' accepted connections: the socket
//! with something attached that lives exactly as long as the connection
//! and hears of every read. Reads and writes pass through unchanged.
//!
//! - The gRPC services attach a connection slot
//!   ([`crate::grpc::Capped`]): it frees when the connection is dropped.
//! - The gateway attaches its connection's state, which reads move from
//!   idle to reading a request head.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tonic::transport::server::Connected;

/// What an [`Attached`] socket tells what is attached to it.
pub trait Attachment {
    /// Bytes arrived on the socket (after every read that returned some).
    fn on_read(&self) {}
}

/// A connection slot only needs to live as long as the connection.
impl Attachment for OwnedSemaphorePermit {}

impl<A: Attachment + ?Sized> Attachment for Arc<A> {
    fn on_read(&self) {
        (**self).on_read();
    }
}

/// A socket `io` with `attachment` attached (see the module docs).
#[derive(Debug)]
pub struct Attached<T, A> {
    io: T,
    attachment: A,
}

impl<T, A> Attached<T, A> {
    pub fn new(io: T, attachment: A) -> Self {
        Self { io, attachment }
    }
}

impl<T: Connected, A> Connected for Attached<T, A> {
    type ConnectInfo = T::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<T: AsyncRead + Unpin, A: Attachment + Unpin> AsyncRead for Attached<T, A> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.attachment.on_read();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin, A: Unpin> AsyncWrite for Attached<T, A> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[derive(Default)]
    struct Reads(AtomicUsize);

    impl Attachment for Reads {
        fn on_read(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn bytes_pass_through_and_only_reads_that_return_some_are_heard() {
        let (a, mut b) = tokio::io::duplex(64);
        let reads = Arc::new(Reads::default());
        let mut io = Attached::new(a, reads.clone());
        io.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        assert_eq!(reads.0.load(Ordering::Relaxed), 0, "writes are not reads");
        b.write_all(b"pong").await.unwrap();
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
        assert!(reads.0.load(Ordering::Relaxed) >= 1);
        drop(b);
        let before = reads.0.load(Ordering::Relaxed);
        assert_eq!(io.read(&mut got).await.unwrap(), 0, "end of stream");
        assert_eq!(reads.0.load(Ordering::Relaxed), before);
    }
}
