//! Reading a remote's answers and turning failures into the crate's [`Error`].

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::Secret;
use crate::Error;

/// The longest `Retry-After` honoured.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How many characters of an answer an error message shows.
const EXCERPT_CHARS: usize = 200;

/// How many bytes of an error answer are read for its excerpt.
const EXCERPT_BYTES: usize = 4096;

/// The start of an answer's body, at most a limit.
#[derive(Debug, Default)]
pub(super) struct Body {
    /// The bytes read.
    pub(super) bytes: Vec<u8>,
    /// The answer was longer than the limit; `bytes` holds its start.
    pub(super) truncated: bool,
}

/// Reads at most `limit` bytes of the answer, piece by piece. Stops reading (and says
/// `truncated`) when the answer is longer; when its `Content-Length` says so up front, reads
/// only the start, for an excerpt.
pub(super) async fn read_body(
    response: &mut Response,
    limit: usize,
) -> Result<Body, reqwest::Error> {
    let mut body = Body::default();
    let mut limit = limit;
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        body.truncated = true;
        limit = limit.min(EXCERPT_BYTES);
    }
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.bytes.len();
        if chunk.len() > room {
            body.bytes.extend_from_slice(&chunk[..room]);
            body.truncated = true;
            break;
        }
        body.bytes.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What an answer that is not a success said.
#[derive(Debug)]
pub(super) struct Failure {
    /// Its status.
    pub(super) status: StatusCode,
    /// Its `Retry-After`.
    retry_after: Option<Duration>,
    /// Its `Location`, for redirects.
    location: Option<String>,
    /// The start of its body, for messages.
    pub(super) excerpt: String,
}

impl Failure {
    /// Reads the status, headers and at most `limit` bytes of an answer.
    pub(super) async fn read(
        mut response: Response,
        limit: usize,
        credential: Option<&Secret>,
    ) -> Failure {
        let headers = response.headers();
        let retry_after = headers.get(RETRY_AFTER).and_then(parse_retry_after);
        let location = location(headers);
        let excerpt = match read_body(&mut response, limit.min(EXCERPT_BYTES)).await {
            Ok(body) => excerpt(&body, credential),
            Err(e) => format!("(the answer was cut short: {})", deepest_cause(&e)),
        };
        Failure {
            status: response.status(),
            retry_after,
            location,
            excerpt,
        }
    }

    /// The error for this answer to `method url`.
    pub(super) fn into_error(self, method: &Method, url: &Url) -> Error {
        classify(
            method,
            url,
            self.status,
            self.retry_after,
            self.location,
            &self.excerpt,
        )
    }
}

/// The error for a non-success status, given an excerpt of the answer.
pub(super) fn classify(
    method: &Method,
    url: &Url,
    status: StatusCode,
    retry_after: Option<Duration>,
    location: Option<String>,
    excerpt: &str,
) -> Error {
    let path = url.path();
    let code = status.as_u16();
    if status.is_redirection() {
        let to = location.map_or_else(String::new, |l| format!(" to `{l}`"));
        return Error::Permanent {
            message: format!(
                "{method} {path} answered {code} (a redirect{to}), and redirects are not followed; \
                 point the remote's base URL at the final address: {excerpt}"
            ),
            status: Some(code),
        };
    }
    let message = format!("{method} {path} answered {code}: {excerpt}");
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Error::Retryable {
            message,
            status: Some(code),
            retry_after,
        }
    } else {
        Error::Permanent {
            message,
            status: Some(code),
        }
    }
}

/// A failure to exchange the request and its answer: always retryable.
pub(super) fn transport_error(
    method: &Method,
    url: &Url,
    timeout: Duration,
    error: &reqwest::Error,
) -> Error {
    let path = url.path();
    let what = if error.is_connect() {
        "could not connect".to_owned()
    } else if error.is_timeout() {
        format!("timed out (request timeout {timeout:?})")
    } else if error.is_body() || error.is_decode() {
        "failed while reading the answer".to_owned()
    } else {
        "failed in transit".to_owned()
    };
    // reqwest's own message names the whole URL; its causes (I/O, hyper) do not.
    let cause = deepest_cause(error);
    let cause = if cause.is_empty() {
        String::new()
    } else {
        format!(" ({cause})")
    };
    Error::Retryable {
        message: format!("{method} {path} {what}{cause}"),
        status: None,
        retry_after: None,
    }
}

/// The innermost error below reqwest's, which is the informative one ("connection refused").
fn deepest_cause(error: &reqwest::Error) -> String {
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    bounded(&cause, EXCERPT_CHARS)
}

/// `Retry-After` as delta-seconds or an HTTP date, at most [`MAX_RETRY_AFTER`]. A date in the
/// past is zero.
pub(super) fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let delay = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is a very long time.
        text.parse::<u64>()
            .map_or(MAX_RETRY_AFTER, Duration::from_secs)
    } else {
        httpdate::parse_http_date(text)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// A redirect's target, for the message.
fn location(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(LOCATION)?;
    Some(bounded(&String::from_utf8_lossy(value.as_bytes()), 200))
}

/// At most 200 characters of an answer, for messages, on one line and without the credential.
pub(super) fn excerpt(body: &Body, credential: Option<&Secret>) -> String {
    let text = String::from_utf8_lossy(&body.bytes);
    let mut text: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if let Some(secret) = credential.map(Secret::expose)
        && secret.len() >= 4
        && text.contains(secret)
    {
        text = text.replace(secret, "***");
    }
    if text.is_empty() {
        return if body.truncated {
            "(a long answer)".into()
        } else {
            "(empty answer)".into()
        };
    }
    let mut shown = bounded(&text, EXCERPT_CHARS);
    if body.truncated && !shown.ends_with('…') {
        shown.push('…');
    }
    shown
}

/// `text` cut at `chars` characters, with `…` when cut.
fn bounded(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(bytes: &[u8], truncated: bool) -> Body {
        Body {
            bytes: bytes.to_vec(),
            truncated,
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let parse = |s: &str| parse_retry_after(&HeaderValue::from_str(s).unwrap());
        assert_eq!(parse("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse("99999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse("99999999999999999999999"), Some(MAX_RETRY_AFTER));
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        let parsed = parse(&in_a_minute).unwrap();
        assert!(
            parsed > Duration::from_secs(55) && parsed <= Duration::from_secs(60),
            "{parsed:?}"
        );
        let an_hour_ago = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(3600));
        assert_eq!(parse(&an_hour_ago), Some(Duration::ZERO));
        let next_year = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3 << 23));
        assert_eq!(parse(&next_year), Some(MAX_RETRY_AFTER));
        assert_eq!(parse("soon"), None);
        assert_eq!(parse("-5"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn excerpts_are_short_single_lines() {
        assert_eq!(excerpt(&body(b"", false), None), "(empty answer)");
        assert_eq!(excerpt(&body(b"  a\r\nb\t ", false), None), "a  b");
        let long = "é".repeat(500);
        let shown = excerpt(&body(long.as_bytes(), false), None);
        assert_eq!(shown.chars().count(), EXCERPT_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(excerpt(&body(b"abc", true), None), "abc…");
        assert_eq!(excerpt(&body(&[0xff, b'a'], false), None), "\u{fffd}a");
    }

    #[test]
    fn excerpts_hide_the_credential() {
        let secret = Secret::new("tok-123");
        assert_eq!(
            excerpt(
                &body(b"bad token Bearer tok-123 for you", false),
                Some(&secret)
            ),
            "bad token Bearer *** for you"
        );
    }

    #[test]
    fn statuses_are_classified() {
        let url = Url::parse("http://h/api/contacts/1").unwrap();
        let class = |code: u16| {
            let status = StatusCode::from_u16(code).unwrap();
            match classify(&Method::PUT, &url, status, None, None, "x") {
                Error::Retryable {
                    status: Some(s), ..
                } if s == code => "retry",
                Error::Permanent {
                    status: Some(s), ..
                } if s == code => "permanent",
                other => panic!("{other:?}"),
            }
        };
        for code in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(class(code), "retry", "{code}");
        }
        for code in [301, 307, 400, 401, 403, 404, 409, 410, 422, 451] {
            assert_eq!(class(code), "permanent", "{code}");
        }
        let err = classify(
            &Method::POST,
            &url,
            StatusCode::PERMANENT_REDIRECT,
            None,
            Some("https://elsewhere/x".into()),
            "(empty answer)",
        );
        assert!(
            err.to_string()
                .contains("answered 308 (a redirect to `https://elsewhere/x`)"),
            "{err}"
        );
    }
}
