//! The record handed from the call site to the outputs.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::level::Level;

/// A string that is usually `'static` (captured at compile time) and owned otherwise.
pub type Str = Cow<'static, str>;

/// One log event, owned so it can cross to the writer thread. Kept small (three cache
/// lines): it is copied through the queue once per record.
#[derive(Clone, Debug)]
pub struct Record {
    /// Severity.
    pub level: Level,
    /// Microseconds since the Unix epoch (UTC).
    pub time_us: i64,
    /// Where the record comes from (logger name, file, line, function).
    pub origin: Origin,
    /// OS thread id of the caller.
    pub thread_id: u64,
    /// Thread name, if the thread has one.
    pub thread_name: Option<&'static str>,
    /// The formatted message.
    pub message: Message,
    /// Key-value fields, in call order.
    pub fields: Vec<(Str, Value)>,
}

/// The source of a record.
#[derive(Clone, Debug)]
pub enum Origin {
    /// A macro call site: everything was captured at compile time.
    Callsite(&'static crate::core::Callsite),
    /// Records from `log`, `tracing` or the panic hook.
    Other(Box<OtherOrigin>),
}

/// The source of a record that did not come from our macros.
#[derive(Clone, Debug)]
pub struct OtherOrigin {
    /// Logger name (module path or target).
    pub target: Str,
    /// Source file, empty when unknown.
    pub file: Str,
    /// Source line, 0 when unknown.
    pub line: u32,
    /// Enclosing function, when known.
    pub function: Option<Str>,
}

impl Record {
    /// Logger name: the module path for our macros and `log`, the target for `tracing`.
    #[inline]
    pub fn target(&self) -> &str {
        match &self.origin {
            Origin::Callsite(c) => c.module(),
            Origin::Other(o) => &o.target,
        }
    }

    /// Source file, as `file!()` gives it.
    #[inline]
    pub fn file(&self) -> &str {
        match &self.origin {
            Origin::Callsite(c) => c.file(),
            Origin::Other(o) => &o.file,
        }
    }

    /// Source line, 0 when unknown.
    #[inline]
    pub fn line(&self) -> u32 {
        match &self.origin {
            Origin::Callsite(c) => c.line(),
            Origin::Other(o) => o.line,
        }
    }

    /// The enclosing function's own name, closures folded into their function.
    #[inline]
    pub fn function(&self) -> Option<&str> {
        match &self.origin {
            Origin::Callsite(c) => Some(c.function()),
            Origin::Other(o) => o.function.as_deref(),
        }
    }
}

/// `type_name` of the marker fn a macro defines inside the calling function, trimmed
/// to that function's name.
pub(crate) fn trim_function(raw: &str) -> &str {
    let mut s = raw.strip_suffix("::__logger_fn").unwrap_or(raw);
    while let Some(t) = s.strip_suffix("::{{closure}}") {
        s = t;
    }
    s.rsplit("::").next().unwrap_or(s)
}

/// Bytes a message keeps inside the record before it needs the heap. Formatting into
/// the record avoids a malloc on the caller and a cross-thread free on the writer,
/// which together cost more than everything else on the hot path.
pub const INLINE_MESSAGE: usize = 110;

/// A formatted message: static text, inline bytes, or a heap string for long ones.
#[derive(Clone)]
pub struct Message(MessageRepr);

#[derive(Clone)]
enum MessageRepr {
    Static(&'static str),
    /// The first `len` bytes of `buf` are initialised UTF-8.
    Inline {
        len: u8,
        buf: [MaybeUninit<u8>; INLINE_MESSAGE],
    },
    Heap(Box<str>),
}

impl Message {
    /// Formats `args`, inline when it fits. Formats straight into the message's own
    /// bytes (no zeroing, no copy out of a scratch buffer).
    #[inline]
    pub fn format(args: fmt::Arguments<'_>) -> Message {
        if let Some(s) = args.as_str() {
            return Message(MessageRepr::Static(s));
        }
        let mut m = Message(MessageRepr::Inline {
            len: 0,
            buf: [MaybeUninit::uninit(); INLINE_MESSAGE],
        });
        let mut w = InlineWriter {
            msg: &mut m.0,
            heap: None,
        };
        let _ = fmt::write(&mut w, args);
        if let Some(h) = w.heap {
            m.0 = MessageRepr::Heap(h.into_boxed_str());
        }
        m
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            MessageRepr::Static(s) => s,
            // SAFETY: only whole `&str`s are copied into `buf`, so `..len` is
            // initialised UTF-8.
            MessageRepr::Inline { len, buf } => unsafe {
                std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                    buf.as_ptr() as *const u8,
                    *len as usize,
                ))
            },
            MessageRepr::Heap(s) => s,
        }
    }
}

struct InlineWriter<'a> {
    msg: &'a mut MessageRepr,
    /// Set once the text outgrows the inline bytes.
    heap: Option<String>,
}

impl fmt::Write for InlineWriter<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(h) = &mut self.heap {
            h.push_str(s);
            return Ok(());
        }
        if let MessageRepr::Inline { len, buf } = self.msg {
            let start = *len as usize;
            let end = start + s.len();
            if end <= INLINE_MESSAGE {
                // SAFETY: `end <= INLINE_MESSAGE`, and the source is a valid `&str`.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        s.as_ptr(),
                        buf.as_mut_ptr().add(start) as *mut u8,
                        s.len(),
                    );
                }
                *len = end as u8;
            } else {
                let mut h = String::with_capacity(end * 2);
                // SAFETY: see `Message::as_str`.
                h.push_str(unsafe {
                    std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                        buf.as_ptr() as *const u8,
                        start,
                    ))
                });
                h.push_str(s);
                self.heap = Some(h);
            }
        }
        Ok(())
    }
}

impl std::ops::Deref for Message {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for Message {
    fn from(s: &'static str) -> Self {
        Message(MessageRepr::Static(s))
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message(MessageRepr::Heap(s.into_boxed_str()))
    }
}

/// A field value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text.
    Str(Str),
    /// Signed integer.
    I64(i64),
    /// Unsigned integer.
    U64(u64),
    /// Floating point.
    F64(f64),
    /// Boolean.
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::I64(v) => v.fmt(f),
            Value::U64(v) => v.fmt(f),
            Value::F64(v) => v.fmt(f),
            Value::Bool(v) => v.fmt(f),
        }
    }
}

/// Conversion of a field value written in a macro (`user = 42`).
pub trait ToValue {
    /// Converts to an owned value.
    fn to_value(&self) -> Value;
}

macro_rules! int_value {
    ($variant:ident, $as:ty: $($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value { Value::$variant(*self as $as) }
        }
    )*};
}
int_value!(I64, i64: i8, i16, i32, i64, isize);
int_value!(U64, u64: u8, u16, u32, u64, usize);
int_value!(F64, f64: f32, f64);

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Str(Cow::Owned(self.to_string()))
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Str(Cow::Owned(self.clone()))
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Str(Cow::Borrowed("")),
        }
    }
}

/// Wraps any `Display` value as a text field: `logger::info!(addr = logger::display(&a); "…")`.
pub struct Display<T>(pub T);

/// Marks a value to be recorded through its `Display` impl.
pub fn display<T: fmt::Display>(v: T) -> Display<T> {
    Display(v)
}

impl<T: fmt::Display> ToValue for Display<T> {
    fn to_value(&self) -> Value {
        Value::Str(Cow::Owned(self.0.to_string()))
    }
}

/// Microseconds since the Unix epoch.
#[inline]
pub(crate) fn now_us() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

thread_local! {
    /// (OS thread id, interned name); id 0 means not looked up yet.
    static THREAD: Cell<(u64, Option<&'static str>)> = const { Cell::new((0, None)) };
}

/// Thread names are interned once per distinct name so records carry a `&'static str`
/// instead of touching a shared reference count on every call.
static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

fn intern(name: &str) -> &'static str {
    let mut guard = match NAMES.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(s) = set.get(name) {
        return s;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

fn os_thread_id() -> u64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions and cannot fail.
        (unsafe { libc::syscall(libc::SYS_gettid) }) as u64
    }
    #[cfg(not(target_os = "linux"))]
    {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// The calling thread's id and name, looked up once per thread.
#[inline]
pub(crate) fn current_thread() -> (u64, Option<&'static str>) {
    THREAD.with(|c| {
        let v = c.get();
        if v.0 != 0 {
            return v;
        }
        let v = (os_thread_id(), std::thread::current().name().map(intern));
        c.set(v);
        v
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_stay_inline_until_they_do_not_fit() {
        // Variables, not literals: rustc folds literal arguments into the format string.
        let (id, ip) = (42, String::from("10.0.0.1"));
        let short = Message::format(format_args!("user {} from {}", id, ip));
        assert_eq!(short.as_str(), "user 42 from 10.0.0.1");
        assert!(matches!(short.0, MessageRepr::Inline { .. }));
        let long_text = "é".repeat(100);
        let long = Message::format(format_args!("{} {}", long_text, id));
        assert_eq!(long.as_str(), format!("{long_text} 42"));
        assert!(matches!(long.0, MessageRepr::Heap(_)));
        assert!(matches!(
            Message::format(format_args!("plain")).0,
            MessageRepr::Static("plain")
        ));
    }

    #[test]
    fn function_marker_is_trimmed_to_the_function_name() {
        assert_eq!(trim_function("app::db::connect::__logger_fn"), "connect");
        assert_eq!(
            trim_function("app::run::{{closure}}::{{closure}}::__logger_fn"),
            "run"
        );
        assert!(
            std::mem::size_of::<Record>() <= 192,
            "{}",
            std::mem::size_of::<Record>()
        );
    }
}
