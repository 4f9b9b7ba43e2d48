//! The record handed from the call site to the outputs.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;
use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::sync::Mutex;

use crate::callsite::Callsite;
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
    Callsite(&'static Callsite),
    /// Records from `log`, `tracing` or the panic hook.
    Other(Box<OtherOrigin>),
}

impl Origin {
    /// An origin for a record that did not come from our macros.
    pub fn other(
        target: impl Into<Str>,
        file: impl Into<Str>,
        line: u32,
        function: Option<Str>,
    ) -> Origin {
        Origin::Other(Box::new(OtherOrigin {
            target: target.into(),
            file: file.into(),
            line,
            function,
        }))
    }
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
    /// A plain info record with `message` (unit tests).
    #[cfg(test)]
    pub(crate) fn for_test(message: &str) -> Record {
        Record {
            level: Level::Info,
            time_us: 0,
            origin: Origin::other("test", "", 0, None),
            thread_id: 0,
            thread_name: None,
            message: message.to_string().into(),
            fields: Vec::new(),
        }
    }

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
    /// Arguments captured at the call site, formatted on the writer
    /// ([`Message::materialize`]): `fmt` holds only `{}`, `{{` and `}}`; `buf[..len]`
    /// holds one encoded [`Arg`] per `{}` (see [`encode_args`]).
    Deferred {
        fmt: &'static str,
        len: u8,
        buf: [MaybeUninit<u8>; DEFERRED_BYTES],
    },
}

/// Bytes of encoded arguments a deferred message holds: as much as fits beside the
/// format string without making a message larger than an inline one.
const DEFERRED_BYTES: usize = INLINE_MESSAGE - 16;

/// An argument captured at a call site for formatting on the writer: what `{}` would
/// print, cheap to copy. `No` for every other type (the call site then formats as usual).
#[doc(hidden)]
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    U(u64),
    I(i64),
    S(&'a str),
    No,
}

/// A macro argument, for picking how to capture it: [`ArgExact`] for the types the
/// writer can print like `{}` does, [`ArgAny`] (one autoref further) for every other.
#[doc(hidden)]
pub struct Wrap<'a, T: ?Sized>(pub &'a T);

/// Capture of the types printed on the writer (preferred by method resolution).
#[doc(hidden)]
pub trait ArgExact<'a> {
    fn __logger_arg(&self) -> Arg<'a>;
}

/// Every other type: not captured (the call site formats the message).
#[doc(hidden)]
pub trait ArgAny<'a> {
    fn __logger_arg(&self) -> Arg<'a>;
}

impl<'a, T: ?Sized> ArgAny<'a> for &Wrap<'a, T> {
    #[inline(always)]
    fn __logger_arg(&self) -> Arg<'a> {
        Arg::No
    }
}

macro_rules! capture_ints {
    ($variant:ident as $wide:ty: $($t:ty),+) => {$(
        impl<'a> ArgExact<'a> for Wrap<'a, $t> {
            #[inline(always)]
            fn __logger_arg(&self) -> Arg<'a> {
                Arg::$variant(*self.0 as $wide)
            }
        }
    )+};
}
capture_ints!(U as u64: u8, u16, u32, u64, usize);
capture_ints!(I as i64: i8, i16, i32, i64, isize);

impl<'a> ArgExact<'a> for Wrap<'a, str> {
    #[inline(always)]
    fn __logger_arg(&self) -> Arg<'a> {
        Arg::S(self.0)
    }
}

impl<'a> ArgExact<'a> for Wrap<'a, &str> {
    #[inline(always)]
    fn __logger_arg(&self) -> Arg<'a> {
        Arg::S(self.0)
    }
}

impl<'a> ArgExact<'a> for Wrap<'a, String> {
    #[inline(always)]
    fn __logger_arg(&self) -> Arg<'a> {
        Arg::S(self.0)
    }
}

const TAG_U: u8 = 0;
const TAG_I: u8 = 1;
const TAG_S: u8 = 2;

/// Whether `fmt` uses only `{}` placeholders (and `{{`/`}}`), exactly `n` of them: then
/// the writer can substitute captured arguments and print what `format!` would.
pub(crate) fn simple_format(fmt: &str, n: usize) -> bool {
    let b = fmt.as_bytes();
    let (mut i, mut count) = (0, 0);
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'{', Some(b'{')) | (b'}', Some(b'}')) => i += 2,
            (b'{', Some(b'}')) => {
                count += 1;
                i += 2;
            }
            (b'{' | b'}', _) => return false,
            _ => i += 1,
        }
    }
    count == n
}

/// Encodes `args` for a deferred message: a tag byte, then 8 bytes for an integer or a
/// length byte and the text for a string. `None` when one is not capturable or they do
/// not fit (the call site then formats as usual).
#[inline]
fn encode_args(args: &[Arg<'_>], buf: &mut [MaybeUninit<u8>; DEFERRED_BYTES]) -> Option<u8> {
    let mut at = 0usize;
    for a in args {
        let (tag, bytes): (u8, &[u8]) = match a {
            Arg::U(v) => (TAG_U, &v.to_ne_bytes()[..]),
            Arg::I(v) => (TAG_I, &v.to_ne_bytes()[..]),
            Arg::S(s) if s.len() <= u8::MAX as usize => (TAG_S, s.as_bytes()),
            _ => return None,
        };
        let extra = usize::from(tag == TAG_S);
        let end = at + 1 + extra + bytes.len();
        if end > DEFERRED_BYTES {
            return None;
        }
        buf[at].write(tag);
        if tag == TAG_S {
            buf[at + 1].write(bytes.len() as u8);
        }
        // SAFETY: `end <= DEFERRED_BYTES` was checked above.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                buf.as_mut_ptr().add(at + 1 + extra) as *mut u8,
                bytes.len(),
            );
        }
        at = end;
    }
    Some(at as u8)
}

/// Writes `fmt` with its `{}` replaced by the arguments `encode_args` put in `enc`, and
/// `{{`/`}}` unescaped: exactly what `format!` prints for these types.
#[inline]
fn render_deferred(fmt: &str, mut enc: &[u8], mut put: impl FnMut(&str)) {
    let mut num = itoa::Buffer::new();
    let mut rest = fmt.as_bytes();
    // A byte scan: `str::find` with a char set decodes UTF-8 and is several times slower.
    while let Some(i) = rest.iter().position(|&b| b == b'{' || b == b'}') {
        // SAFETY: `i` is at an ASCII brace, so both halves are whole UTF-8.
        put(unsafe { std::str::from_utf8_unchecked(&rest[..i]) });
        if rest[i..].starts_with(b"{}") {
            // `simple_format` matched the placeholders to the arguments; never panic on
            // the writer if that were broken, stop substituting instead.
            let Some((&tag, tail)) = enc.split_first() else {
                break;
            };
            let text: &str = match tag {
                TAG_U => num.format(u64::from_ne_bytes(tail[..8].try_into().unwrap_or_default())),
                TAG_I => num.format(i64::from_ne_bytes(tail[..8].try_into().unwrap_or_default())),
                _ => {
                    let n = tail[0] as usize;
                    // SAFETY: copied from a `&str` by `encode_args`.
                    unsafe { std::str::from_utf8_unchecked(&tail[1..1 + n]) }
                }
            };
            enc = match tag {
                TAG_U | TAG_I => &tail[8..],
                _ => &tail[1 + tail[0] as usize..],
            };
            put(text);
        } else {
            // `{{` or `}}` (`simple_format` allowed nothing else).
            put(if rest[i] == b'{' { "{" } else { "}" });
        }
        rest = &rest[i + 2..];
    }
    // SAFETY: a suffix of `fmt` after an ASCII brace.
    put(unsafe { std::str::from_utf8_unchecked(rest) });
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

    /// A message whose arguments are formatted later, on the writer; `None` when they
    /// cannot be (an argument of another type, or too long): format as usual then.
    /// `fmt` must pass [`simple_format`] for `args.len()`.
    #[inline]
    pub(crate) fn deferred(fmt: &'static str, args: &[Arg<'_>]) -> Option<Message> {
        let mut buf = [MaybeUninit::uninit(); DEFERRED_BYTES];
        let len = encode_args(args, &mut buf)?;
        Some(Message(MessageRepr::Deferred { fmt, len, buf }))
    }

    /// Formats a deferred message's arguments into its text (the writer does this before
    /// a format or output that reads the text sees the record); other messages are left
    /// alone.
    pub(crate) fn materialize(&mut self) {
        let MessageRepr::Deferred { fmt, len, buf } = &self.0 else {
            return;
        };
        let fmt = *fmt;
        // Copied out: the text is written over the same bytes.
        let mut enc = [0u8; DEFERRED_BYTES];
        let n = *len as usize;
        // SAFETY: `encode_args` initialised `..len`.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr() as *const u8, enc.as_mut_ptr(), n) };
        self.0 = MessageRepr::Inline {
            len: 0,
            buf: [MaybeUninit::uninit(); INLINE_MESSAGE],
        };
        let mut w = InlineWriter {
            msg: &mut self.0,
            heap: None,
        };
        render_deferred(fmt, &enc[..n], |s| {
            let _ = w.write_str(s);
        });
        if let Some(h) = w.heap.take() {
            self.0 = MessageRepr::Heap(h.into_boxed_str());
        }
    }

    /// Appends the text to `out`; captured arguments are formatted straight into it.
    #[inline]
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match &self.0 {
            MessageRepr::Deferred { fmt, len, buf } => {
                // SAFETY: `encode_args` initialised `..len`.
                let enc =
                    unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, *len as usize) };
                render_deferred(fmt, enc, |s| out.extend_from_slice(s.as_bytes()));
            }
            _ => out.extend_from_slice(self.as_str().as_bytes()),
        }
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
            // Never seen outside the writer, which materializes it first.
            MessageRepr::Deferred { fmt, .. } => fmt,
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
    use crate::callsite::trim_function;

    #[test]
    // The borrow is the point: the macros' `(&Wrap(&x))` picks `ArgExact` over `ArgAny`.
    #[allow(clippy::needless_borrow)]
    fn deferred_messages_materialize_exactly_like_format() {
        let (big, neg, ip, owned) = (u64::MAX, i64::MIN, "10.0.0.1", String::from("ü ✓"));
        let args = [
            (&Wrap(&big)).__logger_arg(),
            (&Wrap(&neg)).__logger_arg(),
            (&Wrap(&ip)).__logger_arg(),
            (&Wrap(&owned)).__logger_arg(),
            (&Wrap(&7u8)).__logger_arg(),
        ];
        assert!(!args.iter().any(|a| matches!(a, Arg::No)));
        for other in [
            (&Wrap(&0.5f64)).__logger_arg(),
            (&Wrap(&'c')).__logger_arg(),
            (&Wrap(&true)).__logger_arg(),
        ] {
            assert!(matches!(other, Arg::No));
        }
        let fmt = "a {} b {{}} {}}} {}{} {}";
        assert!(simple_format(fmt, 5));
        let mut m = Message::deferred(fmt, &args).unwrap();
        assert!(matches!(m.0, MessageRepr::Deferred { .. }));
        m.materialize();
        assert!(matches!(m.0, MessageRepr::Inline { .. }));
        assert_eq!(
            m.as_str(),
            format!("a {big} b {{}} {neg}}} {ip}{owned} {}", 7u8)
        );
        // Longer than inline once formatted: still exact, on the heap.
        let mut long = Message::deferred("{}{}{}{}{}{}{}{}{}{}", &[Arg::U(u64::MAX); 10]).unwrap();
        long.materialize();
        assert!(matches!(long.0, MessageRepr::Heap(_)));
        assert_eq!(long.as_str(), u64::MAX.to_string().repeat(10));
        let s = "z".repeat(80);
        // Arguments that do not fit are refused (the call site formats them instead).
        let huge = "h".repeat(DEFERRED_BYTES);
        assert!(Message::deferred("{}", &[Arg::S(&huge)]).is_none());
        assert!(Message::deferred("{} {}", &[Arg::S(&s), Arg::S(&s)]).is_none());
        assert!(Message::deferred("{}", &[Arg::No]).is_none());
        // Only bare `{}` placeholders, exactly as many as arguments.
        for (f, n) in [
            ("{:?}", 1),
            ("{0}", 1),
            ("{x}", 0),
            ("{", 0),
            ("}", 0),
            ("{} {}", 1),
            ("{:5}", 1),
        ] {
            assert!(!simple_format(f, n), "{f}");
        }
        assert!(simple_format("no args {{}}", 0));
    }

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
