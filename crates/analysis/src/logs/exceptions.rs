//! Exception and stack-trace extraction from multi-line log messages.
//!
//! A stack trace says what failed (the exception type), why (its message)
//! and where (the frames): the evidence a person points at first, and the
//! file and function names a code-change ranking matches against commits.
//! Recognised: Java/Kotlin (`Exception in thread`, `Caused by:`,
//! `\tat a.b.C.m(File.java:12)`), Python tracebacks
//! (`File "x.py", line 12, in f`), Go panics (goroutine traces with
//! `file.go:123`), .NET (`   at Ns.C.M() in C:\x.cs:line 12`) and Node.js
//! (`    at fn (/app/x.js:10:5)`).

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

/// The runtime that printed a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Java, Kotlin and other JVM languages.
    Java,
    /// CPython tracebacks.
    Python,
    /// Go panics and goroutine dumps.
    Go,
    /// .NET (C#, F#) exceptions.
    Dotnet,
    /// Node.js (V8) errors.
    Node,
}

/// One stack frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// Function or method, qualified as the runtime prints it.
    pub function: String,
    /// Source file (path as printed), when known.
    pub file: Option<String>,
    /// Line number, when known.
    pub line: Option<u32>,
}

impl Frame {
    /// `file:line` (or the function when the location is unknown).
    pub fn location(&self) -> String {
        match (&self.file, self.line) {
            (Some(f), Some(l)) => format!("{f}:{l}"),
            (Some(f), None) => f.clone(),
            _ => self.function.clone(),
        }
    }
}

/// An exception found in a log message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExceptionInfo {
    /// Which runtime printed it.
    pub language: Language,
    /// Exception type (`java.lang.NullPointerException`, `KeyError`,
    /// `panic`/`runtime error`, `TypeError`).
    pub exception_type: String,
    /// The exception's message (may be empty).
    pub message: String,
    /// Innermost cause for chained exceptions (`Caused by:`, `--->`,
    /// "During handling…"), type and message; `None` when not chained.
    pub root_cause: Option<(String, String)>,
    /// Frames, the frame that raised first (most recent call first).
    pub frames: Vec<Frame>,
}

impl ExceptionInfo {
    /// The first `n` frames, as `function (file:line)`.
    pub fn top_frames(&self, n: usize) -> Vec<String> {
        self.frames
            .iter()
            .take(n)
            .map(|f| match (&f.file, f.line) {
                (Some(_), _) => format!("{} ({})", f.function, f.location()),
                _ => f.function.clone(),
            })
            .collect()
    }
}

macro_rules! re {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| {
            #[allow(clippy::expect_used, reason = "a literal pattern checked by the tests")]
            Regex::new($pat).expect("static regex")
        });
    };
}

// Java: `at com.acme.C.m(C.java:12)`, `at java.base/x.Y.z(Y.java:5)`,
// `at x.Y.z(Native Method)`, Kotlin `(File.kt:3)`.
re!(
    JAVA_FRAME,
    r"^\s*at\s+(?:[\w.$-]+/)?([\w.$<>]+)\(([^():]*)(?::(\d+))?\)\s*$"
);
// A JVM exception header: qualified type ending in Exception/Error/Throwable.
re!(
    JAVA_HEADER,
    r"^(?:Exception in thread .*?\s)?(?:Caused by:\s*)?((?:[a-zA-Z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable|Failure)[\w$]*)(?::\s*(.*))?$"
);
re!(PY_FRAME, r#"^\s*File "([^"]+)", line (\d+)(?:, in (.+))?$"#);
// The exception line: a (dotted) class name with a capitalised last part.
re!(PY_EXC, r"^((?:[A-Za-z_]\w*\.)*[A-Z]\w*)(?::\s*(.*))?$");
re!(GO_PANIC, r"^panic:\s*(.*)$");
re!(GO_FUNC, r"^([\w./*()\-]+\.[\w.*()\-]+)\(.*\)$");
re!(GO_LOC, r"^\s+(\S+\.go):(\d+)(?:\s+\+0x[0-9a-f]+)?$");
re!(
    DOTNET_FRAME,
    r"^\s*at\s+([\w.`<>\[\],]+)\((.*)\)(?:\s+in\s+(.+):line\s+(\d+))?\s*$"
);
re!(
    DOTNET_HEADER,
    r"^(?:Unhandled exception\.\s*)?((?:[A-Za-z_][\w]*\.)+[A-Z]\w*Exception)(?::\s*(.*))?$"
);
re!(
    NODE_FRAME,
    r"^\s*at\s+(?:(.+?)\s+\()?((?:[A-Za-z]:)?[^():\s][^():]*):(\d+):(\d+)\)?\s*$"
);
re!(
    NODE_HEADER,
    r"^(?:Uncaught\s+)?([A-Z]\w*(?:Error|Exception))(?:\s*\[\w+\])?:\s*(.*)$"
);

/// Extracts the exception of a multi-line message, if it carries one.
///
/// ```
/// use rootcause_analysis::logs::exceptions::{extract_exception, Language};
///
/// let msg = "boom\njava.lang.IllegalStateException: closed\n\tat a.B.c(B.java:7)";
/// let e = extract_exception(msg).expect("a Java exception");
/// assert_eq!(e.language, Language::Java);
/// assert_eq!(e.exception_type, "java.lang.IllegalStateException");
/// assert_eq!(e.frames[0].location(), "B.java:7");
/// ```
pub fn extract_exception(message: &str) -> Option<ExceptionInfo> {
    let lines: Vec<&str> = message.lines().collect();
    let any = |f: &dyn Fn(&str) -> bool| lines.iter().any(|l| f(l));
    if any(&|l| {
        l.trim_start()
            .starts_with("Traceback (most recent call last)")
    }) {
        return python(&lines);
    }
    if (any(&|l| GO_PANIC.is_match(l)) || any(&|l| l.starts_with("goroutine ") && l.ends_with(':')))
        && let Some(e) = go(&lines)
    {
        return Some(e);
    }
    if (any(&|l| JAVA_FRAME.is_match(l)) || any(&|l| JAVA_HEADER.is_match(l.trim())))
        && let Some(e) = java(&lines)
    {
        return Some(e);
    }
    if (any(&|l| DOTNET_FRAME.is_match(l) && l.contains(" in ") && l.contains(":line "))
        || any(&|l| DOTNET_HEADER.is_match(l.trim())))
        && let Some(e) = dotnet(&lines)
    {
        return Some(e);
    }
    if any(&|l| NODE_FRAME.is_match(l)) {
        return node(&lines);
    }
    None
}

fn java(lines: &[&str]) -> Option<ExceptionInfo> {
    let mut header: Option<(String, String)> = None;
    let mut root: Option<(String, String)> = None;
    let mut frames = Vec::new();
    let mut in_cause = false;
    for l in lines {
        let t = l.trim();
        if let Some(c) = JAVA_FRAME.captures(l) {
            if !in_cause {
                frames.push(java_frame(&c));
            }
            continue;
        }
        if let Some(c) = JAVA_HEADER.captures(t) {
            let ty = c[1].to_owned();
            let msg = c.get(2).map_or("", |m| m.as_str()).to_owned();
            if t.starts_with("Caused by:") {
                root = Some((ty, msg));
                in_cause = true;
            } else if header.is_none() {
                header = Some((ty, msg));
            }
        }
    }
    let (exception_type, message) = header.or_else(|| root.clone())?;
    let root_cause = root.filter(|r| r.0 != exception_type || r.1 != message);
    Some(ExceptionInfo {
        language: Language::Java,
        exception_type,
        message,
        root_cause,
        frames,
    })
}

fn java_frame(c: &regex::Captures<'_>) -> Frame {
    let file = c.get(2).map(|m| m.as_str()).filter(|f| f.contains('.'));
    Frame {
        function: c[1].to_owned(),
        file: file.map(str::to_owned),
        line: c.get(3).and_then(|m| m.as_str().parse().ok()),
    }
}

fn python(lines: &[&str]) -> Option<ExceptionInfo> {
    let mut frames = Vec::new();
    let mut chain: Vec<(String, String)> = Vec::new();
    let mut after_traceback = false;
    let mut current: Vec<Frame> = Vec::new();
    for l in lines {
        if l.trim_start()
            .starts_with("Traceback (most recent call last)")
        {
            after_traceback = true;
            current.clear();
            continue;
        }
        if let Some(c) = PY_FRAME.captures(l) {
            current.push(Frame {
                function: c.get(3).map_or("<module>", |m| m.as_str()).to_owned(),
                file: Some(c[1].to_owned()),
                line: c[2].parse().ok(),
            });
            continue;
        }
        if after_traceback
            && !l.starts_with(' ')
            && !l.is_empty()
            && let Some(c) = PY_EXC.captures(l)
        {
            let msg = c.get(2).map_or("", |m| m.as_str()).trim().to_owned();
            chain.push((c[1].to_owned(), msg));
            frames = std::mem::take(&mut current);
            after_traceback = false;
        }
    }
    // The last exception printed is the one that escaped; an earlier one
    // ("During handling of the above exception…") is its root cause.
    let (exception_type, message) = chain.last()?.clone();
    let root_cause = (chain.len() > 1).then(|| chain[0].clone());
    frames.reverse();
    Some(ExceptionInfo {
        language: Language::Python,
        exception_type,
        message,
        root_cause,
        frames,
    })
}

fn go(lines: &[&str]) -> Option<ExceptionInfo> {
    let mut panic_msg: Option<String> = None;
    let mut frames = Vec::new();
    let mut pending: Option<String> = None;
    for l in lines {
        if panic_msg.is_none()
            && let Some(c) = GO_PANIC.captures(l)
        {
            panic_msg = Some(c[1].trim().to_owned());
            continue;
        }
        if let Some(c) = GO_LOC.captures(l) {
            if let Some(function) = pending.take() {
                frames.push(Frame {
                    function,
                    file: Some(c[1].to_owned()),
                    line: c[2].parse().ok(),
                });
            }
            continue;
        }
        if let Some(c) = GO_FUNC.captures(l.trim_end()) {
            let f = c[1].to_owned();
            // The runtime's own frames (gopanic, panicmem) precede the code
            // that panicked; keep user frames first.
            pending = Some(f);
        }
    }
    let msg = panic_msg.unwrap_or_default();
    let (exception_type, message) = match msg.split_once(": ") {
        Some(("runtime error", rest)) => ("runtime error".to_owned(), rest.to_owned()),
        _ => ("panic".to_owned(), msg),
    };
    frames.retain(|f| !f.function.starts_with("runtime.") && !f.function.starts_with("panic("));
    if frames.is_empty() && message.is_empty() {
        return None;
    }
    Some(ExceptionInfo {
        language: Language::Go,
        exception_type,
        message,
        root_cause: None,
        frames,
    })
}

fn dotnet(lines: &[&str]) -> Option<ExceptionInfo> {
    let mut header: Option<(String, String)> = None;
    let mut inner: Option<(String, String)> = None;
    let mut frames = Vec::new();
    for l in lines {
        let t = l.trim();
        if let Some(c) = DOTNET_FRAME.captures(l) {
            frames.push(Frame {
                function: c[1].to_owned(),
                file: c.get(3).map(|m| m.as_str().to_owned()),
                line: c.get(4).and_then(|m| m.as_str().parse().ok()),
            });
            continue;
        }
        // `---> System.X: inner` marks an inner exception.
        let (is_inner, text) = match t.strip_prefix("--->") {
            Some(rest) => (true, rest.trim()),
            None => (false, t),
        };
        if let Some(c) = DOTNET_HEADER.captures(text) {
            let pair = (
                c[1].to_owned(),
                c.get(2).map_or("", |m| m.as_str()).trim().to_owned(),
            );
            if is_inner {
                inner = Some(pair);
            } else if header.is_none() {
                header = Some(pair);
            }
        }
    }
    let (exception_type, mut message) = header.or_else(|| inner.clone())?;
    // The header repeats the inner exception after ` ---> `.
    if let Some(pos) = message.find(" ---> ") {
        message.truncate(pos);
    }
    Some(ExceptionInfo {
        language: Language::Dotnet,
        exception_type,
        message,
        root_cause: inner,
        frames,
    })
}

fn node(lines: &[&str]) -> Option<ExceptionInfo> {
    let mut header: Option<(String, String)> = None;
    let mut frames = Vec::new();
    for l in lines {
        if let Some(c) = NODE_FRAME.captures(l) {
            frames.push(Frame {
                function: c.get(1).map_or("<anonymous>", |m| m.as_str()).to_owned(),
                file: Some(c[2].to_owned()),
                line: c[3].parse().ok(),
            });
            continue;
        }
        if header.is_none()
            && let Some(c) = NODE_HEADER.captures(l.trim())
        {
            header = Some((c[1].to_owned(), c[2].trim().to_owned()));
        }
    }
    let (exception_type, message) = header?;
    Some(ExceptionInfo {
        language: Language::Node,
        exception_type,
        message,
        root_cause: None,
        frames,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn java_with_caused_by_and_log_prefix() {
        let msg = "Reservation failed for checkout 8c27b5fc after 3 attempts\n\
org.springframework.web.client.ResourceAccessException: I/O error on POST request for \"http://inventory:8080/v1/reservations\": Connection refused\n\
\tat org.springframework.web.client.DefaultRestClient.createResourceAccessException(DefaultRestClient.java:534)\n\
\tat com.acme.checkout.clients.InventoryClient.reserve(InventoryClient.java:17)\n\
\tat java.base/java.lang.Thread.run(Thread.java:1583)\n\
Caused by: java.net.ConnectException: Connection refused\n\
\tat java.base/sun.nio.ch.Net.connect0(Native Method)\n\
\t... 12 more";
        let e = extract_exception(msg).unwrap();
        assert_eq!(e.language, Language::Java);
        assert_eq!(
            e.exception_type,
            "org.springframework.web.client.ResourceAccessException"
        );
        assert!(e.message.starts_with("I/O error on POST request"));
        assert_eq!(
            e.root_cause,
            Some((
                "java.net.ConnectException".into(),
                "Connection refused".into()
            ))
        );
        assert_eq!(e.frames.len(), 3);
        assert_eq!(
            e.frames[1].function,
            "com.acme.checkout.clients.InventoryClient.reserve"
        );
        assert_eq!(e.frames[1].location(), "InventoryClient.java:17");
        assert_eq!(e.frames[2].function, "java.lang.Thread.run");
    }

    #[test]
    fn java_exception_in_thread_and_kotlin_frames() {
        let msg = "Exception in thread \"main\" java.lang.IllegalStateException: Order 42 already paid\n\
\tat com.acme.orders.OrderService.pay(OrderService.kt:88)\n\
\tat com.acme.orders.MainKt.main(Main.kt:12)";
        let e = extract_exception(msg).unwrap();
        assert_eq!(e.exception_type, "java.lang.IllegalStateException");
        assert_eq!(e.message, "Order 42 already paid");
        assert_eq!(e.frames[0].location(), "OrderService.kt:88");
        assert_eq!(
            e.top_frames(1),
            ["com.acme.orders.OrderService.pay (OrderService.kt:88)"]
        );
    }

    #[test]
    fn python_traceback_innermost_frame_first() {
        let msg = "Exception in ASGI application\n\
Traceback (most recent call last):\n\
  File \"/usr/local/lib/python3.12/site-packages/uvicorn/protocols/http/httptools_impl.py\", line 419, in run_asgi\n\
    result = await app(  # type: ignore[func-returns-value]\n\
  File \"/app/search/main.py\", line 88, in suggest\n\
    prefix = q.strip().lower()[:64]\n\
AttributeError: 'NoneType' object has no attribute 'strip'";
        let e = extract_exception(msg).unwrap();
        assert_eq!(e.language, Language::Python);
        assert_eq!(e.exception_type, "AttributeError");
        assert_eq!(e.message, "'NoneType' object has no attribute 'strip'");
        assert_eq!(e.frames[0].function, "suggest");
        assert_eq!(e.frames[0].location(), "/app/search/main.py:88");
        assert_eq!(e.frames.len(), 2);
    }

    #[test]
    fn python_chained_exception_keeps_the_first_as_root_cause() {
        let msg = "Traceback (most recent call last):\n\
  File \"/app/db.py\", line 10, in get\n\
    return rows[0]\n\
IndexError: list index out of range\n\
\n\
During handling of the above exception, another exception occurred:\n\
\n\
Traceback (most recent call last):\n\
  File \"/app/api.py\", line 5, in handler\n\
    user = db.get(uid)\n\
app.errors.NotFound: user 7";
        let e = extract_exception(msg).unwrap();
        assert_eq!(e.exception_type, "app.errors.NotFound");
        assert_eq!(e.message, "user 7");
        assert_eq!(
            e.root_cause,
            Some(("IndexError".into(), "list index out of range".into()))
        );
        assert_eq!(e.frames[0].location(), "/app/api.py:5");
    }

    #[test]
    fn go_panic_with_goroutine_trace() {
        let msg = "panic: runtime error: invalid memory address or nil pointer dereference\n\
[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x6b4c2a]\n\
\n\
goroutine 42 [running]:\n\
github.com/acme/inventory/internal/reserve.(*Service).Reserve(0xc000112000, {0x7f3a20, 0xc0001a2000})\n\
\t/app/internal/reserve/service.go:123 +0x2a\n\
github.com/acme/inventory/internal/api.(*Handler).reserve(0xc00010e000, {0x7f5b00, 0xc0001b4000}, 0xc0001c6000)\n\
\t/app/internal/api/handler.go:57 +0x1d3\n\
net/http.HandlerFunc.ServeHTTP(0xc000120000, {0x7f5b00, 0xc0001b4000}, 0xc0001c6000)\n\
\t/usr/local/go/src/net/http/server.go:2136 +0x29";
        let e = extract_exception(msg).unwrap();
        assert_eq!(e.language, Language::Go);
        assert_eq!(e.exception_type, "runtime error");
        assert_eq!(
            e.message,
            "invalid memory address or nil pointer dereference"
        );
        assert_eq!(
            e.frames[0].function,
            "github.com/acme/inventory/internal/reserve.(*Service).Reserve"
        );
        assert_eq!(
            e.frames[0].location(),
            "/app/internal/reserve/service.go:123"
        );
        assert_eq!(e.frames.len(), 3);
    }

    #[test]
    fn go_plain_panic_value() {
        let msg = "panic: config: missing key \"db.url\"\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/cmd/app/main.go:31 +0x85";
        let e = extract_exception(msg).unwrap();
        assert_eq!(e.exception_type, "panic");
        assert_eq!(e.message, "config: missing key \"db.url\"");
        assert_eq!(e.frames[0].location(), "/src/cmd/app/main.go:31");
    }

    #[test]
    fn dotnet_with_inner_exception() {
        let msg = "Unhandled exception. System.InvalidOperationException: Sequence contains no elements ---> System.ArgumentNullException: Value cannot be null. (Parameter 'source')\n\
   at System.Linq.ThrowHelper.ThrowNoElementsException()\n\
   at Acme.Billing.InvoiceService.Latest(Int32 customerId) in C:\\src\\Billing\\InvoiceService.cs:line 42\n\
   at Acme.Billing.Api.InvoicesController.Get(Int32 id) in /src/Billing.Api/InvoicesController.cs:line 17\n\
   --- End of inner exception stack trace ---";
        let e = extract_exception(msg).unwrap();
        assert_eq!(e.language, Language::Dotnet);
        assert_eq!(e.exception_type, "System.InvalidOperationException");
        assert_eq!(e.message, "Sequence contains no elements");
        assert_eq!(e.frames[1].function, "Acme.Billing.InvoiceService.Latest");
        assert_eq!(
            e.frames[1].location(),
            "C:\\src\\Billing\\InvoiceService.cs:42"
        );
        assert_eq!(e.frames[0].file, None);
    }

    #[test]
    fn node_error_with_named_and_anonymous_frames() {
        let msg = "TypeError: Cannot read properties of undefined (reading 'price')\n\
    at totalFor (/app/src/cart/total.js:10:5)\n\
    at Array.map (<anonymous>)\n\
    at /app/src/routes/cart.js:22:17\n\
    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)";
        let e = extract_exception(msg).unwrap();
        assert_eq!(e.language, Language::Node);
        assert_eq!(e.exception_type, "TypeError");
        assert_eq!(
            e.message,
            "Cannot read properties of undefined (reading 'price')"
        );
        assert_eq!(e.frames[0].function, "totalFor");
        assert_eq!(e.frames[0].location(), "/app/src/cart/total.js:10");
        assert_eq!(e.frames[1].location(), "/app/src/routes/cart.js:22");
    }

    #[test]
    fn plain_messages_have_no_exception() {
        assert_eq!(extract_exception("GET /health 200 in 3ms"), None);
        assert_eq!(extract_exception("retrying in 5s\nattempt 2 of 3"), None);
    }
}
