//! Streamed response bodies: [`BodyStream`] holds the concurrency permit for as long as the body is
//! read, enforces the idle timeout between chunks and stops on cancellation; [`ChatChunkStream`]
//! frames it (SSE or NDJSON) and hands each frame to an adapter's [`StreamDecoder`].
//!
//! Nothing here retries: once bytes flow, an error ends the stream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use secrecy::SecretString;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::lines::{Frame, FrameParser, Framing};
use crate::error::LlmError;
use crate::types::ChatChunk;

/// The body of a successful streaming response.
pub struct BodyStream {
    provider: Arc<str>,
    inner: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    idle_timeout: Duration,
    /// Fires at the earliest moment the body could have been idle too long; it is re-armed
    /// lazily from `last_data` rather than reset on every chunk.
    idle: Pin<Box<Sleep>>,
    last_data: Instant,
    cancelled: Option<BoxFuture<'static, ()>>,
    permit: Option<OwnedSemaphorePermit>,
    /// To scrub the key out of provider text in mid-stream errors.
    key: Option<SecretString>,
}

impl BodyStream {
    pub(super) fn new(
        provider: Arc<str>,
        response: reqwest::Response,
        idle_timeout: Duration,
        cancel: Option<CancellationToken>,
        permit: OwnedSemaphorePermit,
        key: Option<SecretString>,
    ) -> Self {
        Self {
            provider,
            inner: Some(Box::pin(response.bytes_stream())),
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            last_data: Instant::now(),
            cancelled: cancel.map(|t| -> BoxFuture<'static, ()> { Box::pin(t.cancelled_owned()) }),
            permit: Some(permit),
            key,
        }
    }

    /// Closes the connection and frees the permit.
    fn close(&mut self) {
        self.inner = None;
        self.permit = None;
        self.cancelled = None;
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(cancelled) = this.cancelled.as_mut()
            && cancelled.as_mut().poll(cx).is_ready()
        {
            this.close();
            return Poll::Ready(Some(Err(LlmError::Cancelled)));
        }
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.last_data = Instant::now();
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.close();
                let message = format!("the stream broke off: {}", super::describe(&e));
                Poll::Ready(Some(Err(LlmError::Connection {
                    provider: this.provider.to_string(),
                    message,
                })))
            }
            Poll::Ready(None) => {
                this.close();
                Poll::Ready(None)
            }
            Poll::Pending => {
                while this.idle.as_mut().poll(cx).is_ready() {
                    let deadline = this.last_data + this.idle_timeout;
                    if deadline > Instant::now() {
                        this.idle.as_mut().reset(deadline);
                        continue; // polls the re-armed timer, registering the waker
                    }
                    this.close();
                    return Poll::Ready(Some(Err(LlmError::Timeout {
                        provider: this.provider.to_string(),
                        timeout: this.idle_timeout,
                    })));
                }
                Poll::Pending
            }
        }
    }
}

/// The largest incomplete frame we buffer: a peer that never ends a line cannot exhaust memory.
const MAX_PENDING_FRAME: usize = 16 * 1024 * 1024;

/// What an adapter does with each frame of its stream.
pub trait StreamDecoder: Send + 'static {
    /// Handles one frame, pushing any resulting chunks. Returns `true` once the stream is complete
    /// (the final [`ChatChunk::Done`] has been pushed).
    fn frame(&mut self, frame: Frame, out: &mut VecDeque<ChatChunk>) -> Result<bool, LlmError>;

    /// The body ended without the decoder reporting completion. Providers whose streams end at
    /// end-of-body (Gemini) push their `Done` here; the others report a truncated stream.
    fn end(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), LlmError>;
}

/// A body decoded into chat chunks. Chunks decoded before a failure are delivered before the
/// error; the error ends the stream.
pub struct ChatChunkStream<D> {
    body: BodyStream,
    parser: FrameParser,
    decoder: D,
    ready: VecDeque<ChatChunk>,
    failure: Option<LlmError>,
    finished: bool,
}

impl<D: StreamDecoder> ChatChunkStream<D> {
    pub fn new(body: BodyStream, framing: Framing, decoder: D) -> Self {
        Self {
            body,
            parser: FrameParser::new(framing),
            decoder,
            ready: VecDeque::new(),
            failure: None,
            finished: false,
        }
    }

    /// Runs the decoder over every frame the parser has ready.
    fn drain_frames(&mut self) -> Result<(), LlmError> {
        while !self.finished {
            let Some(frame) = self.parser.next_frame() else { break };
            if self.decoder.frame(frame, &mut self.ready)? {
                self.finish();
            }
        }
        Ok(())
    }

    /// No more input: closes the connection and frees the concurrency slot.
    fn finish(&mut self) {
        self.finished = true;
        self.body.close();
    }

    fn fail(&mut self, mut e: LlmError) {
        if let Some(message) = e.message_mut() {
            *message = super::classify::sanitize(message, self.body.key.as_ref());
        }
        self.failure = Some(e);
        self.finish();
    }
}

impl<D: StreamDecoder + Unpin> Stream for ChatChunkStream<D> {
    type Item = Result<ChatChunk, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(chunk) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            if let Some(e) = this.failure.take() {
                return Poll::Ready(Some(Err(e)));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.body).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => this.fail(e),
                Poll::Ready(Some(Ok(bytes))) => {
                    this.parser.push(&bytes);
                    if let Err(e) = this.drain_frames() {
                        this.fail(e);
                    } else if this.parser.pending_bytes() > MAX_PENDING_FRAME {
                        let message = format!("a stream frame exceeds {MAX_PENDING_FRAME} bytes");
                        this.fail(LlmError::Protocol {
                            provider: this.body.provider.to_string(),
                            message,
                        });
                    }
                }
                Poll::Ready(None) => {
                    this.parser.finish();
                    let ended = this.drain_frames().and_then(|()| {
                        if this.finished { Ok(()) } else { this.decoder.end(&mut this.ready) }
                    });
                    match ended {
                        Ok(()) => this.finish(),
                        Err(e) => this.fail(e),
                    }
                }
            }
        }
    }
}
