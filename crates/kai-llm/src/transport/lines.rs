//! Incremental framing of streamed bodies: Server-Sent Events (OpenAI, Anthropic, Gemini) and
//! newline-delimited JSON (Ollama). Bytes go in as the network delivers them, in chunks of any
//! size (a chunk may end inside a line, inside a UTF-8 character or between `\r` and `\n`); whole
//! events come out. Knows nothing about JSON or any provider.

use std::collections::VecDeque;

/// One framed event: for SSE the `event:` name and the joined `data:` lines; for NDJSON one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub event: Option<String>,
    pub data: String,
}

/// Which framing a body uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Sse,
    Ndjson,
}

/// Splits a byte stream into [`Frame`]s.
#[derive(Debug)]
pub struct FrameParser {
    framing: Framing,
    buf: Vec<u8>,
    /// The previous line ended with `\r`: a `\n` starting the next input belongs to it.
    skip_lf: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    ready: VecDeque<Frame>,
}

impl FrameParser {
    pub fn new(framing: Framing) -> Self {
        Self {
            framing,
            buf: Vec::new(),
            skip_lf: false,
            event: None,
            data: String::new(),
            has_data: false,
            ready: VecDeque::new(),
        }
    }

    /// Feeds bytes; complete frames become available from [`Self::next_frame`].
    pub fn push(&mut self, bytes: &[u8]) {
        let mut input = bytes;
        if self.skip_lf && !input.is_empty() {
            if input[0] == b'\n' {
                input = &input[1..];
            }
            self.skip_lf = false;
        }
        // Work on the buffer outside `self` so lines can be borrowed from it, not copied.
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(input);
        let mut start = 0;
        while let Some(offset) = buf[start..].iter().position(|&b| b == b'\n' || b == b'\r') {
            let end = start + offset;
            let is_cr = buf[end] == b'\r';
            self.line(&String::from_utf8_lossy(&buf[start..end]));
            start = end + 1;
            if is_cr {
                match buf.get(start) {
                    Some(b'\n') => start += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
        buf.drain(..start);
        self.buf = buf;
    }

    /// Bytes held for a frame that is not complete yet.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len() + self.data.len()
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Option<Frame> {
        self.ready.pop_front()
    }

    /// Ends the input: a last line without a terminator, or an SSE event without its blank line,
    /// is still delivered.
    pub fn finish(&mut self) {
        if !self.buf.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
            self.line(&line);
        }
        if self.framing == Framing::Sse {
            self.dispatch();
        }
    }

    fn line(&mut self, line: &str) {
        match self.framing {
            Framing::Ndjson => {
                if !line.trim().is_empty() {
                    self.ready.push_back(Frame { event: None, data: line.to_owned() });
                }
            }
            Framing::Sse => self.sse_line(line),
        }
    }

    fn sse_line(&mut self, line: &str) {
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if line.starts_with(':') {
            return; // comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {} // id, retry and unknown fields do not matter here
        }
    }

    fn dispatch(&mut self) {
        let event = self.event.take();
        if self.has_data {
            self.has_data = false;
            self.ready.push_back(Frame { event, data: std::mem::take(&mut self.data) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(framing: Framing, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut p = FrameParser::new(framing);
        let mut out = Vec::new();
        for chunk in chunks {
            p.push(chunk);
            while let Some(f) = p.next_frame() {
                out.push(f);
            }
        }
        p.finish();
        while let Some(f) = p.next_frame() {
            out.push(f);
        }
        out
    }

    fn frame(event: Option<&str>, data: &str) -> Frame {
        Frame { event: event.map(str::to_owned), data: data.to_owned() }
    }

    #[test]
    fn sse_fields_comments_and_multiline_data() {
        let body = b": keep-alive\nevent: message_start\ndata: {\"a\":1}\n\ndata: one\ndata:two\nid: 3\n\ndata: [DONE]\n\n";
        assert_eq!(
            parse_all(Framing::Sse, &[body]),
            [
                frame(Some("message_start"), "{\"a\":1}"),
                frame(None, "one\ntwo"),
                frame(None, "[DONE]")
            ]
        );
    }

    #[test]
    fn sse_crlf_and_cr_line_endings_and_a_missing_final_blank_line() {
        let body = b"data: a\r\n\r\ndata: b\r\rdata: c";
        assert_eq!(
            parse_all(Framing::Sse, &[body]),
            [frame(None, "a"), frame(None, "b"), frame(None, "c")]
        );
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_its_name_does_not_leak() {
        let body = b"event: ping\n\ndata: x\n\n";
        assert_eq!(parse_all(Framing::Sse, &[body]), [frame(None, "x")]);
    }

    #[test]
    fn ndjson_skips_blank_lines_and_keeps_a_last_unterminated_line() {
        let body = b"{\"a\":1}\r\n\n{\"b\":2}\n{\"c\":3}";
        assert_eq!(
            parse_all(Framing::Ndjson, &[body]),
            [frame(None, "{\"a\":1}"), frame(None, "{\"b\":2}"), frame(None, "{\"c\":3}")]
        );
    }

    #[test]
    fn a_crlf_split_across_chunks_is_one_line_end() {
        let frames = parse_all(Framing::Sse, &[b"data: a\r", b"\n\r", b"\ndata: b\n\n"]);
        assert_eq!(frames, [frame(None, "a"), frame(None, "b")]);
    }

    fn sse_body() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            "[a-zé€ {}:\"\\[\\]0-9]{0,12}".prop_map(|s| format!("data: {s}")),
            "[a-z_]{1,10}".prop_map(|s| format!("event: {s}")),
            Just(": comment".to_owned()),
            Just(String::new()),
        ];
        let ending = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
        prop::collection::vec((line, ending), 0..30).prop_map(|lines| {
            lines.into_iter().flat_map(|(l, e)| format!("{l}{e}").into_bytes()).collect()
        })
    }

    fn split(body: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for c in cuts {
            chunks.push(body[last..c].to_vec());
            last = c;
        }
        chunks.push(body[last..].to_vec());
        chunks
    }

    proptest! {
        #[test]
        fn chunk_boundaries_do_not_change_the_frames(
            body in sse_body(),
            cuts in prop::collection::vec(any::<usize>(), 0..12),
            ndjson in any::<bool>(),
        ) {
            let framing = if ndjson { Framing::Ndjson } else { Framing::Sse };
            let whole = parse_all(framing, &[&body]);
            let chunks = split(&body, &cuts);
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(parse_all(framing, &refs), whole.clone());
            let bytes: Vec<&[u8]> = body.chunks(1).collect();
            prop_assert_eq!(parse_all(framing, &bytes), whole);
        }
    }
}
