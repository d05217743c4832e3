//! The link to the state database, with a deadline on every wait. A database that stops
//! answering without closing the connection (a partition, a proxy or a NAT that drops packets, a
//! paused server) would otherwise leave a statement waiting for ever: TCP only notices what it is
//! told. So the socket is opened within a deadline, and while anything written has had no answer,
//! silence longer than the deadline fails the connection — every statement on it then fails, the
//! writer counts the outage, and a new connection is opened. (Bytes arriving at all count as an
//! answer: a long result that keeps coming is not cut.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a statement waits for the database when nothing else says: the same order as a
/// lease, far above any statement the store makes.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// A stream on which silence after a request is an error once `deadline` has passed.
pub(super) struct Deadlined<S> {
    inner: S,
    deadline: Duration,
    /// When the oldest unanswered write was made (none: nothing awaits an answer).
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Deadlined<S> {
    pub(super) fn new(inner: S, deadline: Duration) -> Deadlined<S> {
        Deadlined {
            inner,
            deadline,
            waiting_since: None,
            timer: None,
        }
    }

    /// Starts waiting for an answer (if not already), with the timer registered on `cx` so the
    /// task wakes when the deadline passes even if the socket stays silent.
    fn awaiting_answer(&mut self, cx: &mut Context<'_>) {
        if self.waiting_since.is_none() {
            let since = Instant::now();
            self.waiting_since = Some(since);
            let mut timer = Box::pin(tokio::time::sleep_until(since + self.deadline));
            let _ = timer.as_mut().poll(cx);
            self.timer = Some(timer);
        }
    }

    fn answered(&mut self) {
        self.waiting_since = None;
        self.timer = None;
    }

    /// Whether the deadline has passed while waiting (polling the timer registers `cx`).
    fn too_late(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.as_mut().is_some_and(|t| t.as_mut().poll(cx).is_ready())
    }

    fn silence(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the state database answered nothing for {} s",
                self.deadline.as_secs_f64()
            ),
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deadlined<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.answered();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if self.too_late(cx) => Poll::Ready(Err(self.silence())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadlined<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.awaiting_answer(cx);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // A peer that takes nothing in is as silent as one that says nothing.
            Poll::Pending => {
                self.awaiting_answer(cx);
                if self.too_late(cx) {
                    Poll::Ready(Err(self.silence()))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending if self.too_late(cx) => Poll::Ready(Err(self.silence())),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A peer that reads what is sent and never answers: the read fails once the deadline has
    /// passed; a peer that answers in time is read as usual.
    #[tokio::test]
    async fn silence_after_a_request_fails_within_the_deadline() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut link = Deadlined::new(near, Duration::from_millis(200));
        link.write_all(b"select 1").await.unwrap();
        let mut got = [0u8; 8];
        far.read_exact(&mut got).await.unwrap();
        far.write_all(b"1").await.unwrap();
        let mut answer = [0u8; 1];
        link.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"1", "an answer in time is read");
        link.write_all(b"select 2").await.unwrap();
        let mut buf = [0u8; 1];
        let started = std::time::Instant::now();
        let silent = tokio::time::timeout(Duration::from_secs(30), link.read(&mut buf))
            .await
            .expect("the deadline, not the test's, ends the wait");
        let e = silent.expect_err("silence is an error");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "it waited its deadline first"
        );
        drop(far);
    }

    /// Nothing asked, nothing awaited: an idle link is not failed for being quiet.
    #[tokio::test(start_paused = true)]
    async fn an_idle_link_is_not_a_silent_one() {
        let (near, _far) = tokio::io::duplex(1024);
        let mut link = Deadlined::new(near, Duration::from_millis(200));
        let mut buf = [0u8; 1];
        let waited = tokio::time::timeout(Duration::from_secs(5), link.read(&mut buf)).await;
        assert!(waited.is_err(), "still waiting after 25 deadlines: {waited:?}");
    }
}
