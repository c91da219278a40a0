//! Idle connections: a connection with no request in flight is closed after `idle_timeout`, and
//! one that has not begun its first request (an HTTP/2 preface or a request head that never
//! comes) after the header-read timeout. hyper bounds the HTTP/1.1 request head itself, but
//! neither keep-alive idleness nor the HTTP/2 preface, and HTTP/2 PINGs keep a connection busy
//! without a request; this covers both protocols the same way.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::response::Body;

/// What a connection is doing: requests in flight, and when the last one began or ended.
pub struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Requests in flight whose body is still arriving (they have not reached the database).
    receiving: AtomicUsize,
    /// Milliseconds after `start` of the last request event; `u64::MAX` before the first.
    last_ms: AtomicU64,
}

/// A request in flight (its response body included); dropping it ends the request.
pub struct Busy(Arc<Activity>);

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            receiving: AtomicUsize::new(0),
            last_ms: AtomicU64::new(u64::MAX),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_ms.store(ms, Ordering::Release);
    }

    /// A request begins.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Busy(self.clone())
    }

    /// Since when the connection has had nothing in flight (since it opened, before its first
    /// request); `None` while a request is in flight.
    pub fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.last())
    }

    /// Since when the connection has been waiting only for request bodies: every request in
    /// flight is still receiving its body (a slow-body client). `None` otherwise. Such a
    /// connection may be shed when every slot is taken and none is idle: nothing of its requests
    /// has reached the database.
    pub fn receiving_since(&self) -> Option<Instant> {
        let n = self.in_flight.load(Ordering::Acquire);
        (n > 0 && self.receiving.load(Ordering::Acquire) >= n).then(|| self.last())
    }

    fn last(&self) -> Instant {
        match self.last_ms.load(Ordering::Acquire) {
            u64::MAX => self.start,
            ms => self.start + Duration::from_millis(ms),
        }
    }

    /// How long until the connection counts as idle (zero: it is idle now), given the limits.
    pub fn idle_in(&self, first_request: Duration, idle: Duration) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return idle;
        }
        let now = self.start.elapsed();
        let due = match self.last_ms.load(Ordering::Acquire) {
            u64::MAX => first_request,
            ms => Duration::from_millis(ms) + idle,
        };
        due.saturating_sub(now)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Resolves once the connection has been idle for its limit.
pub async fn idle(activity: &Activity, first_request: Duration, idle: Duration) {
    loop {
        let wait = activity.idle_in(first_request, idle);
        if wait.is_zero() {
            return;
        }
        tokio::time::sleep(wait).await;
    }
}

/// A request body that counts as arriving (see [`Activity::receiving_since`]) until its last
/// frame, an error, or its drop. An empty body never counts.
pub struct ReceivingBody<B> {
    inner: B,
    activity: Option<Arc<Activity>>,
}

impl<B: HttpBody> ReceivingBody<B> {
    pub fn new(inner: B, activity: &Arc<Activity>) -> ReceivingBody<B> {
        let activity = (!inner.is_end_stream()).then(|| {
            activity.receiving.fetch_add(1, Ordering::AcqRel);
            activity.clone()
        });
        ReceivingBody { inner, activity }
    }

    fn done(&mut self) {
        if let Some(a) = self.activity.take() {
            a.receiving.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<B> Drop for ReceivingBody<B> {
    fn drop(&mut self) {
        if let Some(a) = self.activity.take() {
            a.receiving.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<B: HttpBody + Unpin> HttpBody for ReceivingBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let finished = match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if finished {
            self.done();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request in flight until it is finished or dropped (an event
/// stream is a request in flight for as long as it streams).
pub struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl TrackedBody {
    pub fn new(inner: Body, busy: Busy) -> TrackedBody {
        TrackedBody { inner, _busy: busy }
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_with_nothing_in_flight() {
        let a = Activity::new();
        let first = Duration::from_millis(100);
        let idle = Duration::from_secs(60);
        // before the first request the shorter first-request limit applies
        assert!(a.idle_in(first, idle) <= first);
        let busy = a.begin();
        assert_eq!(
            a.idle_in(first, idle),
            idle,
            "a request in flight is never idle"
        );
        drop(busy);
        let left = a.idle_in(first, idle);
        assert!(left > first && left <= idle, "{left:?}");
        assert!(a.idle_in(first, Duration::ZERO).is_zero());
    }

    #[tokio::test]
    async fn a_connection_waiting_only_for_a_body_can_be_shed() {
        use http_body_util::{BodyExt, Empty, Full};
        let a = Activity::new();
        let busy = a.begin();
        let empty = ReceivingBody::new(Empty::<Bytes>::new(), &a);
        assert!(
            a.receiving_since().is_none(),
            "a request without a body is working, not receiving"
        );
        drop(empty);
        let mut body = ReceivingBody::new(Full::new(Bytes::from_static(b"abc")), &a);
        assert!(a.receiving_since().is_some(), "its body is still arriving");
        let _ = body.frame().await;
        assert!(
            a.receiving_since().is_none(),
            "the whole body arrived: the request is at work"
        );
        drop((body, busy));
        assert!(
            a.receiving_since().is_none(),
            "nothing in flight is idle, not receiving"
        );
        // a second request without a body on the same connection keeps it from being shed
        let _b1 = a.begin();
        let _r1 = ReceivingBody::new(Full::new(Bytes::from_static(b"x")), &a);
        let _b2 = a.begin();
        assert!(a.receiving_since().is_none());
    }

    #[tokio::test]
    async fn idle_resolves_after_the_limit() {
        let a = Activity::new();
        let t = Instant::now();
        idle(&a, Duration::from_millis(50), Duration::from_secs(60)).await;
        assert!(t.elapsed() >= Duration::from_millis(50));
    }
}
