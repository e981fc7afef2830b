//! A parser for the `text/event-stream` framing (the WHATWG HTML "server-sent events"
//! interpretation rules), with no I/O: bytes go in as they arrive, in chunks of any size, and
//! complete messages come out.
//!
//! Only what Runnel's subscriptions need is surfaced: a message's `data`, its `event` name, the
//! last event id *as of its dispatch*, comments (heartbeats) and `retry`. The last event id is
//! the resume point, so it follows the standard exactly: an `id:` field takes effect when its
//! message is dispatched (at the blank line), also when the message has no data, and never for
//! a message cut off by a dropped connection.

/// What the parser produced from the bytes fed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SseItem {
    Message(SseMessage),
    /// A `:` line; the server's heartbeats are `: keep-alive`.
    Comment(String),
    /// The server asked for this reconnection delay, in milliseconds.
    Retry(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseMessage {
    /// The `event:` field, or `None` for the default type `message`.
    pub(crate) event: Option<String>,
    pub(crate) data: String,
    /// The last event id in force when this message was dispatched.
    pub(crate) last_event_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SseError {
    #[error("a server-sent event line is longer than {max_bytes} bytes")]
    LineTooLong { max_bytes: usize },
    #[error("a server-sent event message is larger than {max_bytes} bytes")]
    MessageTooLarge { max_bytes: usize },
    #[error("a server-sent event line is not UTF-8")]
    NotUtf8,
}

#[derive(Debug)]
pub(crate) struct SseParser {
    /// Bytes of the line being read (without its terminator).
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` that starts the next chunk belongs to it.
    after_cr: bool,
    /// Nothing has been read yet: a leading byte order mark is dropped.
    at_start: bool,
    data: String,
    event: Option<String>,
    /// The `id:` seen in the message being read; committed at dispatch.
    pending_id: Option<String>,
    /// The last event id of the stream, as of the last dispatch.
    last_event_id: Option<String>,
    /// Bounds memory when a server (or something posing as one) never ends a line or message.
    max_message_bytes: usize,
}

const BOM: &[u8] = "\u{feff}".as_bytes();

impl SseParser {
    pub(crate) fn new(max_message_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            data: String::new(),
            event: None,
            pending_id: None,
            last_event_id: None,
            max_message_bytes,
        }
    }

    /// The resume point: the id of the last dispatched message (with or without data).
    pub(crate) fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// Forgets a half-read message, as after a dropped connection, but keeps the last event id,
    /// which the reconnection sends as `Last-Event-ID`.
    pub(crate) fn reset_connection(&mut self) {
        self.line.clear();
        self.after_cr = false;
        self.at_start = true;
        self.data.clear();
        self.event = None;
        self.pending_id = None;
    }

    /// Consumes `chunk`, appending every complete item to `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseItem>) -> Result<(), SseError> {
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.push_line_bytes(&rest[..end])?;
            let ended_by_cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if ended_by_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out)?;
        }
        self.push_line_bytes(rest)
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > self.max_message_bytes {
            return Err(SseError::LineTooLong {
                max_bytes: self.max_message_bytes,
            });
        }
        self.line.extend_from_slice(bytes);
        if self.at_start && self.line.len() >= BOM.len() {
            self.at_start = false;
            if self.line.starts_with(BOM) {
                self.line.drain(..BOM.len());
            }
        }
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseItem>) -> Result<(), SseError> {
        // A line shorter than a BOM ends the start of the stream too.
        self.at_start = false;
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        if let Some(comment) = line.strip_prefix(':') {
            out.push(SseItem::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_message_bytes {
                    return Err(SseError::MessageTooLarge {
                        max_bytes: self.max_message_bytes,
                    });
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => self.event = Some(value.to_owned()),
            // The standard ignores ids holding NUL, since they cannot be sent back in a header.
            "id" if !value.contains('\0') => self.pending_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(millis) = value.parse() {
                    out.push(SseItem::Retry(millis));
                }
            }
            _ => {} // Unknown fields are ignored, as the standard says.
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        if let Some(id) = self.pending_id.take() {
            // An empty `id:` resets the last event id, per the standard.
            self.last_event_id = (!id.is_empty()).then_some(id);
        }
        let event = self.event.take();
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the final '\n' added after the last data line
        out.push(SseItem::Message(SseMessage {
            event: event.filter(|name| !name.is_empty()),
            data,
            last_event_id: self.last_event_id.clone(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1024;

    fn parse_all(chunks: &[&[u8]]) -> (Vec<SseItem>, SseParser) {
        let mut parser = SseParser::new(MAX);
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut out).expect("valid stream");
        }
        (out, parser)
    }

    fn message(data: &str, id: Option<&str>) -> SseItem {
        SseItem::Message(SseMessage {
            event: None,
            data: data.to_owned(),
            last_event_id: id.map(str::to_owned),
        })
    }

    #[test]
    fn a_message_is_dispatched_at_the_blank_line_with_its_id() {
        let (items, parser) = parse_all(&[b"id: 7\ndata: {\"a\":1}\n\n"]);
        assert_eq!(items, vec![message("{\"a\":1}", Some("7"))]);
        assert_eq!(parser.last_event_id(), Some("7"));
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let (items, _) = parse_all(&[b"data: first\ndata:second\ndata:  third\ndata\n\n"]);
        assert_eq!(items, vec![message("first\nsecond\n third\n", None)]);
    }

    #[test]
    fn comments_are_reported_and_do_not_end_a_message() {
        let (items, _) = parse_all(&[b": keep-alive\n\ndata: x\n:mid\n\n"]);
        assert_eq!(
            items,
            vec![
                SseItem::Comment("keep-alive".to_owned()),
                SseItem::Comment("mid".to_owned()),
                message("x", None),
            ]
        );
    }

    #[test]
    fn crlf_and_lone_cr_end_lines_like_lf() {
        let (crlf, _) = parse_all(&[b"id: 1\r\ndata: a\r\n\r\nid: 2\rdata: b\r\r"]);
        assert_eq!(crlf, vec![message("a", Some("1")), message("b", Some("2"))]);
    }

    #[test]
    fn a_crlf_split_across_chunks_is_one_line_end() {
        // If the "\n" after a chunk-final "\r" were taken for a second line end, it would be a
        // blank line and dispatch "a" early, with "b" becoming a second message.
        let (items, _) = parse_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(items, vec![message("a\nb", None)]);
    }

    #[test]
    fn messages_split_at_every_byte_parse_the_same() {
        let stream =
            b"\xef\xbb\xbfid: 3\r\nevent: e\ndata: \xc3\xa9t\xc3\xa9\n: hb\r\n\r\ndata: z\n\n";
        let (whole, _) = parse_all(&[stream]);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let (split, parser) = parse_all(&bytes);
        assert_eq!(whole, split);
        assert_eq!(split.len(), 3, "{split:?}");
        assert_eq!(parser.last_event_id(), Some("3"));
        assert_eq!(split[0], SseItem::Comment("hb".to_owned()));
        let SseItem::Message(first) = &split[1] else {
            panic!("{split:?}");
        };
        assert_eq!(first.data, "été");
        assert_eq!(first.event.as_deref(), Some("e"));
    }

    #[test]
    fn an_id_without_data_moves_the_resume_point_but_dispatches_nothing() {
        let (items, parser) = parse_all(&[b"id: 1\ndata: a\n\nid: 42\n\n"]);
        assert_eq!(items, vec![message("a", Some("1"))]);
        assert_eq!(parser.last_event_id(), Some("42"));
    }

    #[test]
    fn a_message_cut_off_before_its_blank_line_is_not_dispatched_nor_resumed_from() {
        let (items, mut parser) = parse_all(&[b"id: 1\ndata: a\n\nid: 2\ndata: b\n"]);
        assert_eq!(items, vec![message("a", Some("1"))]);
        assert_eq!(parser.last_event_id(), Some("1"));
        // The connection drops here; the next connection starts clean.
        parser.reset_connection();
        let mut out = Vec::new();
        parser
            .feed(b"id: 2\ndata: b\n\n", &mut out)
            .expect("valid stream");
        assert_eq!(out, vec![message("b", Some("2"))]);
    }

    #[test]
    fn the_last_event_id_carries_over_to_messages_without_an_id() {
        let (items, _) = parse_all(&[b"id: 5\ndata: a\n\ndata: b\n\nid:\ndata: c\n\n"]);
        assert_eq!(
            items,
            vec![
                message("a", Some("5")),
                message("b", Some("5")),
                message("c", None)
            ]
        );
    }

    #[test]
    fn ids_with_nul_and_unknown_fields_are_ignored() {
        let (items, _) = parse_all(&[b"id: 1\n\nid: 2\0x\nfoo: bar\ndata: a\n\n"]);
        assert_eq!(items, vec![message("a", Some("1"))]);
    }

    #[test]
    fn retry_is_reported_only_when_it_is_a_number() {
        let (items, _) = parse_all(&[b"retry: 2500\nretry: soon\nretry:\n\n"]);
        assert_eq!(items, vec![SseItem::Retry(2500)]);
    }

    #[test]
    fn a_field_without_a_colon_has_an_empty_value() {
        let (items, _) = parse_all(&[b"data\ndata\n\n"]);
        assert_eq!(items, vec![message("\n", None)]);
    }

    #[test]
    fn an_endless_line_is_an_error_not_unbounded_memory() {
        let mut parser = SseParser::new(16);
        let mut out = Vec::new();
        assert_eq!(
            parser.feed(&[b'x'; 17], &mut out),
            Err(SseError::LineTooLong { max_bytes: 16 })
        );
        let mut parser = SseParser::new(16);
        let result = (0..10).try_for_each(|_| parser.feed(b"data: abcd\n", &mut out));
        assert_eq!(result, Err(SseError::MessageTooLarge { max_bytes: 16 }));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut parser = SseParser::new(MAX);
        let mut out = Vec::new();
        assert_eq!(
            parser.feed(b"data: \xff\n\n", &mut out),
            Err(SseError::NotUtf8)
        );
    }
}
